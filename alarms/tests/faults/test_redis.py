"""Redis under faults: restarted empty in the middle of a fan-out (every queued task and every
countdown gone: what is due is found again in the database), and stopped for 30 s during a
stream of alarms, then started with its data (devices are answered all along)."""

import statistics
import time

import pytest
import redis

from .checks import receipts, settle, tally, wait_for
from .traffic import Stream, accepted, answers, burst

pytestmark = pytest.mark.postgres


def _queued(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return client.llen("celery")
    finally:
        client.close()


def test_redis_restarted_empty_mid_fan_out_loses_nothing_and_sends_nothing_twice(
    stack, mail_sink, hook_sink, escalation, report
):
    hook_sink.delay = 0.05  # a slow provider: the queue backs up behind it
    hooks = [hook_sink.url("empty-1"), hook_sink.url("empty-2")]
    token = escalation([(0, 3, hooks), (3, 1, hooks[:1])])
    stack.start()

    alarm_ids = accepted(burst(stack.url, token, 20))
    wait_for(lambda: len(receipts([mail_sink, hook_sink])) >= 30, timeout=20)
    queued = _queued(stack.redis.url)
    stack.redis.stop()
    stack.redis.start()  # empty: no queue, no countdowns, no counters
    settle(alarm_ids, [mail_sink, hook_sink], timeout=45)

    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2)
    result.counts["tasks queued when Redis restarted"] = queued
    if not queued:
        result.problems.append("nothing was queued when Redis restarted: no fault happened")
    report("Redis restarted empty mid fan-out", result)


@pytest.mark.faults
def test_redis_stopped_for_30_s_during_a_stream_answers_every_device_and_catches_up(
    stack, mail_sink, hook_sink, escalation, report
):
    token = escalation([(0, 1, [hook_sink.url("stream-1")]), (10, 1, [])])
    stack.start()
    stack.keep_redis_data()

    stream = Stream(stack.url, token, per_second=2).start()
    time.sleep(10)
    stack.redis.stop()
    down_at = time.monotonic()
    time.sleep(30)
    stack.redis.start()
    up_at = time.monotonic()
    time.sleep(10)
    raises = stream.stop()
    alarm_ids = accepted(raises)
    settle(alarm_ids, [mail_sink, hook_sink], timeout=90)

    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2)
    during = [r.seconds[0] for r in raises if r.answers and down_at <= r.started < up_at]
    result.counts["answers"] = answers(raises)
    result.counts["raised while down"] = len(during)
    if during:
        result.counts["answer time while down p50/max"] = (
            f"{statistics.median(during):.2f}/{max(during):.2f} s"
        )
    if any(a not in (200, 201) for r in raises for a in r.answers) or not during:
        result.problems.append("a device was not answered 200/201 while Redis was down")
    report("Redis stopped for 30 s during a trigger stream", result)
