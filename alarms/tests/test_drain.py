"""The drain: steps due at once after raises are run by one queued task, many alarms per
transaction, on the real Redis queue."""

import json
import re
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alarms import board, engine, tasks
from alarms.lifecycle import raise_alarm
from alarms.models import Alarm
from alarms.timeline import SYSTEM
from alarmsite.celery import app as celery_app
from conftest import purge_queue
from core.redis_client import client as redis_client
from core.task_queue import queue_was_lost
from notifications.delivery import sending
from notifications.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def empty_queue():
    purge_queue()
    yield
    purge_queue()


def queued(task_name: str) -> int:
    messages = redis_client().lrange("celery", 0, -1)
    return sum(json.loads(message)["headers"]["task"] == task_name for message in messages)


@pytest.fixture
def raise_many(make_policy, webhook_channel):
    policy = make_policy([(0, [], [webhook_channel])])

    def raise_(count: int, first: int = 0) -> list[Alarm]:
        return [
            raise_alarm(source="api", dedup_key=f"boiler-{n}", title="Boiler", actor=SYSTEM,
                        policy=policy).alarm
            for n in range(first, first + count)
        ]  # fmt: skip

    return raise_


def test_raises_queue_one_drain_until_it_starts(raise_many, webhook_receiver):
    raise_many(5)
    assert queued(engine.DRAIN_TASK) == 1

    assert tasks.drain() == 5
    assert len(webhook_receiver.requests) == 5

    raise_many(1, first=5)  # the queued drain has started: a raise now needs another
    assert queued(engine.DRAIN_TASK) == 2


def test_a_drain_locks_and_steps_many_alarms_in_one_read(raise_many, webhook_receiver):
    redis_client().delete(board.WATCHED_KEY)  # no board open: no card is read to be sent
    alarms = raise_many(20)

    with CaptureQueriesContext(connection) as statements:
        assert engine.run_due_now() == 20

    reads = [q["sql"] for q in statements if q["sql"].startswith("SELECT")]
    alarm_reads = [sql for sql in reads if 'FROM "alarms_alarm"' in sql]
    assert len(alarm_reads) == 1

    # Each message is written taken (not written, then taken), all with one INSERT. The steps
    # are written with one statement sent once, and so are the results of every
    # RECORD_TOGETHER messages sent.
    def written(what: str) -> int:
        return sum(re.sub(r"^\d+ times: ", "", q["sql"]).startswith(what) for q in statements)

    together = 20 // sending.RECORD_TOGETHER
    assert written('UPDATE "alarms_alarm"') == 1
    assert written('UPDATE "notifications_delivery"') == together
    assert written('INSERT INTO "notifications_delivery"') == 1  # all the steps' deliveries
    assert written('INSERT INTO "alarms_alarmevent"') == 1 + together  # the steps', the sends'
    sent = Delivery.objects.filter(status="sent")
    assert sorted(sent.values_list("alarm_id", flat=True)) == sorted(a.pk for a in alarms)
    assert len(webhook_receiver.requests) == 20
    assert set(Alarm.objects.values_list("current_step", flat=True)) == {0}


def test_an_alarm_whose_step_fails_does_not_hold_back_the_others(raise_many, webhook_receiver):
    good, broken, other = raise_many(3)
    Alarm.objects.filter(pk=broken.pk).update(steps_snapshot=[{"order": 0}])  # no targets named

    assert engine.run_due_now() == 2

    assert set(Delivery.objects.values_list("alarm_id", flat=True)) == {good.pk, other.pk}
    assert Alarm.objects.get(pk=broken.pk).current_step == -1  # still due, for the sweeper


def test_a_step_that_ran_before_breaks_its_batch_s_insert_and_each_step_then_runs_alone(
    raise_many, webhook_receiver
):
    first, again, third = raise_many(3)
    assert engine.run_due_step(again.pk)  # its delivery is written (and queued) ...
    due_again = {"current_step": -1, "next_escalation_at": timezone.now()}
    Alarm.objects.filter(pk=again.pk).update(**due_again)  # ... yet its step is due again

    assert engine.run_due_now() == 3

    counts = Counter(Delivery.objects.values_list("alarm_id", flat=True))
    assert counts == {first.pk: 1, again.pk: 1, third.pk: 1}  # no message twice
    assert set(Alarm.objects.values_list("current_step", flat=True)) == {0}
    posted = Counter(request["json"]["alarm"]["id"] for request in webhook_receiver.requests)
    assert posted == {str(first.pk): 1, str(again.pk): 1, str(third.pk): 1}
    assert sending.attempt(Delivery.objects.get(alarm=again).pk) is None  # its queued task


def test_deliveries_taken_together_go_back_to_the_queue_once_sending_is_slow(
    raise_many, webhook_receiver
):
    webhook_receiver.delay = 0.4  # three posts take longer than a batch sends for
    alarms = raise_many(6)

    assert engine.run_due_now() == 6

    inline = len(webhook_receiver.requests)
    given_back = Delivery.objects.filter(status="pending")
    assert 1 <= inline <= 3
    assert given_back.count() == 6 - inline
    assert set(given_back.values_list("attempts", flat=True)) == {0}
    assert queued("notifications.tasks.deliver") == 6 - inline
    for pk in given_back.values_list("pk", flat=True):
        assert sending.attempt(pk) == "sent"  # as their queued tasks do
    posted = [request["json"]["alarm"]["id"] for request in webhook_receiver.requests]
    assert sorted(posted) == sorted(str(alarm.pk) for alarm in alarms)


def test_a_lost_drain_holds_back_raises_for_seconds_then_the_sweeper_asks_again(raise_many):
    queue_was_lost()  # as beat's first sweep marks the queue: a sweep then trusts the leases
    raise_many(1)
    celery_app.control.purge()  # the drain is lost (a purge, a killed worker's reserved task)
    assert 0 < redis_client().pttl(engine.DRAIN_PENDING) <= engine.DRAIN_PENDING_SECONDS * 1000
    raise_many(1, first=1)
    assert queued(engine.DRAIN_TASK) == 0  # one is thought to be pending

    redis_client().delete(engine.DRAIN_PENDING)  # as it expires
    tasks.sweep()

    assert queued(engine.DRAIN_TASK) == 1
    assert tasks.drain() == 2


def test_a_countdown_task_also_runs_the_steps_overdue_by_more_than_a_moment(
    make_policy, webhook_channel, webhook_receiver
):
    policy = make_policy([(30, [], [webhook_channel])])
    mine, overdue, just_due = (
        raise_alarm(source="api", dedup_key=k, title="Boiler", actor=SYSTEM, policy=policy).alarm
        for k in ("mine", "overdue", "just-due")
    )
    now = timezone.now()
    for alarm, ago in ((mine, 0.1), (overdue, 2.0), (just_due, 0.5)):
        Alarm.objects.filter(pk=alarm.pk).update(next_escalation_at=now - timedelta(seconds=ago))

    assert tasks.escalate(str(mine.pk), str(mine.escalation_token)) is True

    stepped = Alarm.objects.filter(current_step=0).values_list("pk", flat=True)
    assert sorted(stepped) == sorted([mine.pk, overdue.pk])  # the other's task is on its way
    assert len(webhook_receiver.requests) == 2
