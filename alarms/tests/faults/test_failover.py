"""The database primary and the Redis master lost mid-storm, and their standbys promoted: every
process finds the new one by itself (libpq's multi-host connection strings, Sentinel), no
alarm answered 2xx is lost, no step runs twice."""

import os
import time

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from alarms.tests.test_board_browser import CHROMIUM, open_board

from .checks import receipts, settle, tally, wait_for
from .traffic import Stream, accepted, answers, burst

pytestmark = [pytest.mark.postgres, pytest.mark.faults]


def test_the_database_primary_killed_and_the_standby_promoted_mid_storm(
    private_postgres, stack, mail_sink, hook_sink, escalation, report
):
    if private_postgres is None:
        pytest.skip("needs --faults and a PostgreSQL server installed to run a private pair")
    token = escalation([(0, 1, [hook_sink.url("primary-1")]), (5, 1, [])])
    stack.start()
    stack.wait_ready(stack.worker("second-worker"))

    stream = Stream(stack.url, token, per_second=5, patience=90, dedup=True).start()
    time.sleep(8)
    private_postgres.kill_primary()
    killed = time.monotonic()
    try:
        promoted = private_postgres.promote()  # by hand after a while, or by Patroni
        time.sleep(15)
        raises = stream.stop()
        connection.close()  # this process's session was on the lost primary
        alarm_ids = accepted(raises)
        settle(alarm_ids, [mail_sink, hook_sink], timeout=90)
    finally:
        private_postgres.rejoin()  # the pair whole again for the scenarios after this one

    # A send the lost primary could not record goes again (at-least-once), once per process.
    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2, resends_allowed=3)
    # Each try's answer and when it came.
    answered = [
        (a, at + took)
        for r in raises
        for a, at, took in zip(r.answers, r.tried_at, r.seconds, strict=True)
    ]
    between = [a for a, at in answered if killed <= at < promoted]
    first_after = min((at for a, at in answered if a in (200, 201) and at >= killed), default=None)
    result.counts["answers"] = answers(raises)
    result.counts["2xx with no primary"] = sum(1 for a in between if a in (200, 201))
    result.counts["accepting again after the kill"] = (
        f"{first_after - killed:.1f} s" if first_after else "never"
    )
    others = {a for r in raises for a in r.answers if a not in (200, 201, 503)}
    if result.counts["2xx with no primary"]:
        result.problems.append("an alarm was answered 2xx while no primary was there")
    if others:
        result.problems.append(f"answers other than 200/201/503: {sorted(others, key=str)}")
    if sum(1 for r in raises if not r.alarm_id):
        result.problems.append("a device that kept trying was never accepted")
    report(
        f"PostgreSQL primary killed, standby promoted by {private_postgres.manager} mid-storm",
        result,
    )


def test_the_redis_master_killed_mid_fan_out_and_a_replica_promoted_by_sentinel(
    sentinel_redis, stack, mail_sink, hook_sink, escalation, report, browser
):
    if not os.path.exists(CHROMIUM):
        pytest.skip("the board is watched in Debian's chromium, which is not installed")
    # Heartbeats far apart: a card that comes within seconds came live, not with a re-read.
    stack.configure(BOARD_HEARTBEAT_SECONDS=20)
    hook_sink.delay = 0.05  # a slow provider: the queue backs up behind it
    hooks = [hook_sink.url("sentinel-1"), hook_sink.url("sentinel-2")]
    token = escalation([(0, 3, hooks), (4, 1, hooks[:1])])
    stack.start()
    dispatcher = User.objects.create_user("dana", password="pw")
    dispatcher.groups.add(Group.objects.get(name="Dispatch"))
    board = open_board(browser, stack.url, "dana")

    alarm_ids = accepted(burst(stack.url, token, 20))
    wait_for(lambda: len(receipts([mail_sink, hook_sink])) >= 30, timeout=20)
    old = sentinel_redis.kill_master()
    failover = sentinel_redis.wait_for_new_master(old)
    more = accepted(burst(stack.url, token, 5))  # raised once the new master took over
    settle(alarm_ids + more, [mail_sink, hook_sink], timeout=60)

    result = tally(alarm_ids + more, [mail_sink, hook_sink], steps_each=2)
    result.counts["Sentinel failover"] = f"{failover:.1f} s"
    # The board's page, as a dispatcher has it open: it shows every open alarm again, those
    # raised after the failover too, with no banner left.
    shown = _cards_when(board, len(alarm_ids + more), timeout=45)
    result.counts["cards on the open board"] = shown
    if shown != len(alarm_ids + more) or board.is_visible("#banner"):
        result.problems.append(f"the open board shows {shown} cards, or still a banner")
    # The web's channel layer subscribed again on the new master: a new alarm's card is live.
    raised = time.monotonic()
    accepted(burst(stack.url, token, 1))
    live = _cards_when(board, shown + 1, timeout=3) == shown + 1
    result.counts["a new card live after the failover"] = (
        f"{time.monotonic() - raised:.1f} s" if live else "no"
    )
    if not live:
        result.problems.append("a card raised after the failover did not come live within 3 s")
    report("Redis master killed mid fan-out, replica promoted by Sentinel", result)


def _cards_when(page, expected: int, timeout: float) -> int:
    """How many cards the page shows once it shows `expected`, or when time ran out."""
    deadline = time.monotonic() + timeout
    while (shown := page.locator(".card").count()) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    return shown
