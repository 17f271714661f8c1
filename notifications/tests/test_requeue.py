"""The sweeper under a backlog, on the real Redis queue: a delivery whose task is queued is left
to that task; it is queued again only once that task is long overdue, could not be published,
or the queue itself was lost (Redis came back empty)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms import tasks
from alarms.lifecycle import raise_alarm
from alarms.timeline import SYSTEM
from alarmsite.celery import app as celery_app
from conftest import broker_at
from core.redis_client import client as redis_client
from core.task_queue import QUEUE_MARK, queue_was_lost
from notifications.delivery import queueing, recovery
from notifications.models import Delivery, NotificationChannel

from .steps import run_step

pytestmark = pytest.mark.django_db(transaction=True)


def queued() -> int:
    """Tasks waiting in the broker's default queue."""
    return redis_client().llen("celery")


@pytest.fixture
def two_deliveries(make_policy):
    """An alarm whose first step posts to two channels, run as the sweeper runs it: both
    deliveries queued, none sent."""
    channels = [
        NotificationChannel.objects.create(
            kind="webhook", name=name, config={"url": f"http://127.0.0.1:9/{name}"}
        )
        for name in ("hook-a", "hook-b")
    ]
    policy = make_policy([(600, [], channels)])
    outcome = raise_alarm(source="api", dedup_key="k", title="Boiler", actor=SYSTEM, policy=policy)
    celery_app.control.purge()
    rows = run_step(outcome.alarm)
    assert [row.status for row in rows] == ["pending", "pending"]
    assert queued() == 2
    celery_app.control.purge()
    yield rows
    celery_app.control.purge()


def behind(seconds: float) -> None:
    """As if the worker were this far behind: every delivery's time is this long past."""
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=seconds))


def test_a_delivery_whose_task_is_queued_is_not_queued_again_while_the_worker_is_behind(
    two_deliveries,
):
    behind(60)

    assert recovery.retry_overdue() == 0
    assert queued() == 0


def test_a_delivery_whose_task_is_long_overdue_is_queued_again_once(two_deliveries, settings):
    behind(60)
    Delivery.objects.update(queued_until=timezone.now() - timedelta(seconds=1))

    assert recovery.retry_overdue() == 2
    assert queued() == 2
    leased = Delivery.objects.values_list("queued_until", flat=True)
    requeue = timedelta(seconds=settings.REQUEUE_AFTER_SECONDS)
    assert all(until > timezone.now() + requeue - timedelta(seconds=10) for until in leased)
    assert recovery.retry_overdue() == 0
    assert queued() == 2


def test_when_redis_came_back_empty_every_overdue_delivery_is_queued_again(two_deliveries):
    behind(60)
    queue_was_lost()  # the mark is set, as after any earlier sweep
    assert tasks.sweep()["deliveries"] == 0

    redis_client().delete(QUEUE_MARK)  # Redis restarted empty: the queue and the mark are gone

    assert tasks.sweep()["deliveries"] == 2
    assert queued() == 2
    assert tasks.sweep()["deliveries"] == 0


def test_the_queue_mark_tells_once_that_the_queue_was_lost():
    redis_client().delete(QUEUE_MARK)

    assert [queue_was_lost(), queue_was_lost(), queue_was_lost()] == [True, False, False]


def test_a_delivery_that_could_not_be_queued_is_left_to_the_sweeper_at_once(
    two_deliveries, private_redis
):
    (row, _) = two_deliveries
    private_redis.stop()
    with broker_at(private_redis.url):
        queueing.enqueue_on_commit([row.pk])  # outside a transaction: published at once

    row.refresh_from_db()
    assert row.queued_until is None
    behind(60)
    assert recovery.retry_overdue() == 1
    assert queued() == 1
