"""Enqueueing tasks without ever failing the caller: the database is the source of truth.

A task that cannot be published (Redis down) is logged and left to the beat sweeper, which
finds the due work in the database once the broker is back.
"""

import logging

from .celery import app

log = logging.getLogger(__name__)


def enqueue(task_name: str, *args, countdown: float | None = None) -> bool:
    try:
        app.send_task(task_name, args=args, countdown=countdown)
    except Exception:  # noqa: BLE001 (any broker failure: the sweeper takes over)
        log.warning("could not enqueue %s%r; the sweeper will pick it up", task_name, args)
        return False
    return True
