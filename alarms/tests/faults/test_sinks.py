"""Providers failing for a minute: the SMTP server answers 451, then not at all; one webhook
answers 500, another not at all. With the default retries (5 attempts, backoff from 10 s)
every message still goes out once the providers recover, none twice, and escalation keeps its
time meanwhile."""

import time

import pytest

from alarms.models import AlarmEvent

from .checks import settle, tally
from .sinks import ERROR, HANG, OK, WebhookSink
from .traffic import accepted, burst

pytestmark = pytest.mark.postgres

SECOND_STEP_DELAY = 20


@pytest.fixture
def hanging_sink():
    sink = WebhookSink()
    yield sink
    sink.close()


def _step_lateness(alarm_ids) -> float:
    """How much later than its delay the second step ran, at most (seconds)."""
    ran = {}
    events = AlarmEvent.objects.filter(alarm_id__in=alarm_ids, kind="step_notified")
    for alarm_id, detail, at in events.values_list("alarm_id", "detail", "at"):
        ran[(alarm_id, detail["step"])] = at
    late = [
        (ran[(a, 1)] - ran[(a, 0)]).total_seconds() - SECOND_STEP_DELAY
        for a, step in ran
        if step == 0 and (a, 1) in ran
    ]
    return max(late, default=float("nan"))


@pytest.mark.faults
def test_smtp_and_webhooks_failing_for_a_minute_deliver_everything_once_they_recover(
    stack, mail_sink, hook_sink, hanging_sink, escalation, report
):
    stack.configure(DELIVERY_MAX_ATTEMPTS=5, DELIVERY_RETRY_BASE_SECONDS=10)  # the defaults
    failing, hanging = hook_sink.url("fail-500"), hanging_sink.url("fail-timeout")
    token = escalation([(0, 1, [failing, hanging]), (SECOND_STEP_DELAY, 1, [failing])])
    stack.start()
    sinks = [mail_sink, hook_sink, hanging_sink]

    mail_sink.mode, hook_sink.mode, hanging_sink.mode = ERROR, ERROR, HANG
    alarm_ids = accepted(burst(stack.url, token, 6))
    time.sleep(30)
    mail_sink.mode = HANG
    alarm_ids += accepted(burst(stack.url, token, 6))
    time.sleep(30)
    for sink in sinks:
        sink.mode = OK
    cleared = time.monotonic()
    settle(alarm_ids, sinks, timeout=180)
    recovered = time.monotonic() - cleared

    result = tally(alarm_ids, sinks, steps_each=2)
    result.counts["refused"] = sum(sink.refused for sink in sinks)
    result.counts["timed out"] = sum(sink.timed_out for sink in sinks)
    late = _step_lateness(alarm_ids)
    result.counts["second step late by at most"] = f"{late:.1f} s"
    result.counts["all sent"] = f"{recovered:.0f} s after the providers recovered"
    if not late <= 5:  # a sweep, a send timing out, and some slack
        result.problems.append("failing providers delayed the escalation")
    if recovered > 30:  # waiting messages go as the providers accept again, not after backoff
        result.problems.append("messages waited out their backoff after the providers recovered")
    report("SMTP and webhook sinks failing for a minute", result)
