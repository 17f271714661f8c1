"""Each delivery's task on the queue. A row due now whose task waits in the queue carries a
lease (`queued_until`) that tells the sweeper to leave it to that task; one queued with a
countdown carries none (a worker holds that task and may die with it)."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.task_queue import enqueue, lease_until, release

from ..models import Delivery

TASK = "notifications.tasks.deliver"


def enqueue_on_commit(ids: list[int], countdown: float | None = None) -> None:
    """Queue these deliveries once the current transaction commits (which set their
    `queued_until`)."""
    if ids:
        transaction.on_commit(lambda: publish(ids, countdown))


def enqueue_rows_on_commit(rows: list[Delivery]) -> None:
    """As `enqueue_on_commit`, for rows that may be inserted only as their batch ends: their
    ids are read at the commit. A row due later (a person's rule) is queued with a countdown."""
    if rows:
        transaction.on_commit(lambda: _publish_rows(rows))


def _publish_rows(rows: list[Delivery]) -> None:
    now = timezone.now()
    publish([row.pk for row in rows if row.next_attempt_at <= now])
    for row in rows:
        if row.next_attempt_at > now:
            publish([row.pk], countdown=(row.next_attempt_at - now).total_seconds())


def queue_at(ids: list[int], at) -> None:
    """Inside a transaction: these pending deliveries go at `at`, queued once it commits. Due
    now, their task waits in the queue, which the lease tells the sweeper; due later, a worker
    holds the countdown task and may die with it, so they carry no lease."""
    now = timezone.now()
    if at <= now:
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=at, queued_until=lease_until(at))
        enqueue_on_commit(ids)
    else:
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=at, queued_until=None)
        enqueue_on_commit(ids, countdown=(at - now).total_seconds())


def publish(ids: list[int], countdown: float | None = None, queue: str | None = None) -> None:
    """Put these deliveries' tasks on the queue now; those that cannot be published are left
    to the sweeper at once (their lease ends)."""
    lost = [pk for pk in ids if not enqueue(TASK, pk, countdown=countdown, queue=queue)]
    if lost:
        release(Delivery.objects.filter(pk__in=lost), "queued_until")


def sending_lease() -> timedelta:
    """How long a delivery being sent is left to its sender before the sweeper tries it again."""
    return timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS * 3 + 30)
