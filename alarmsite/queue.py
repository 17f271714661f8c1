"""Enqueueing tasks without ever failing the caller: the database is the source of truth.

A task that cannot be published (Redis down) is logged and left to the beat sweeper, which
finds the due work in the database once the broker is back.
"""

import logging

import redis

from .celery import app
from .redis import client as redis_client

log = logging.getLogger(__name__)


def enqueue(task_name: str, *args, countdown: float | None = None) -> bool:
    try:
        app.send_task(task_name, args=args, countdown=countdown)
    except Exception:  # noqa: BLE001 (any broker failure: the sweeper takes over)
        log.warning("could not enqueue %s%r; the sweeper will pick it up", task_name, args)
        return False
    return True


# Kept in the Redis database that holds the queue: gone when Redis comes back empty.
QUEUE_MARK = "alarmbroker:queue-mark"


def queue_was_lost() -> bool:
    """Whether the queue may have lost tasks since the last ask (Redis came back empty, or this
    is the first ask): then every task expected in it is to be sent again."""
    try:
        return bool(redis_client().set(QUEUE_MARK, "1", nx=True))
    except redis.RedisError:  # Redis away: nothing can be queued anyway
        return False
