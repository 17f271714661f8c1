"""Enqueueing tasks without ever failing the caller: the database is the source of truth.

A task that cannot be published (Redis down) is logged and left to the beat sweeper, which
finds the due work in the database once the broker is back.
"""

import logging
from datetime import datetime, timedelta

import redis
from celery import current_app as app  # the project's, set up by alarmsite
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q

from core.redis_client import client as redis_client

log = logging.getLogger(__name__)


# The sweeper's queue, for what it hands back from dead workers too: served in turn with the
# main queue, it never waits behind a backlog.
RECOVERY_QUEUE = settings.CELERY_TASK_ROUTES["escalation.tasks.sweep"]["queue"]


def enqueue(task_name: str, *args, countdown: float | None = None, queue: str | None = None):
    """Publish the task (to `queue`, else its route); whether it was published."""
    try:
        app.send_task(task_name, args=args, countdown=countdown, queue=queue)
    except Exception:  # noqa: BLE001 (any broker failure: the sweeper takes over)
        log.warning("could not enqueue %s%r; the sweeper will pick it up", task_name, args)
        return False
    return True


def enqueue_once(task_name: str, pending_key: str, ttl: float) -> bool:
    """Queue the task unless one queued before under `pending_key` has not started yet (the
    task deletes the key when it starts; `ttl` bounds a key whose task was lost). Return
    whether such a task is queued."""
    try:
        if not redis_client().set(pending_key, "1", nx=True, px=int(ttl * 1000)):
            return True
    except redis.RedisError:  # Redis away: nothing can be queued
        return False
    if enqueue(task_name):
        return True
    started(pending_key)
    return False


def started(pending_key: str) -> None:
    """A task queued by `enqueue_once` starts: the next one asked for is queued anew."""
    try:
        redis_client().delete(pending_key)
    except redis.RedisError:
        log.warning("could not clear %s; it expires on its own", pending_key)


# Leases: a row whose task waits in the queue (a delivery, an alarm's step due at once) names
# until when the sweeper leaves it to that task, in a field of its own.


def lease_until(at: datetime) -> datetime:
    """Until when the sweeper leaves work due `at` to the task queued for it."""
    return at + timedelta(seconds=settings.REQUEUE_AFTER_SECONDS)


def unleased(field: str, now: datetime) -> Q:
    """Rows whose lease in `field` is over, or that have none."""
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lte": now})


def release(rows, field: str) -> None:
    """No task waits for these rows (it could not be published, or the queue was lost): the
    sweeper need not wait for one."""
    try:
        rows.filter(**{f"{field}__isnull": False}).update(**{field: None})
    except DatabaseError:
        log.warning("could not release %s leases; the sweeper waits them out", field)


# Kept in the Redis database that holds the queue: gone when Redis comes back empty.
QUEUE_MARK = "alarmbroker:queue-mark"


def queue_was_lost() -> bool:
    """Whether the queue may have lost tasks since the last ask (Redis came back empty, or this
    is the first ask): then every task expected in it is to be sent again."""
    try:
        return bool(redis_client().set(QUEUE_MARK, "1", nx=True))
    except redis.RedisError:  # Redis away: nothing can be queued anyway
        return False
