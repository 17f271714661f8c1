"""Celery tasks of the alarms app: thin wrappers over its domain modules."""

from celery import shared_task

from . import outbox_watch
from .sources import heartbeats, schedules


@shared_task(name="alarms.tasks.check_heartbeats")
def check_heartbeats() -> int:
    """Beat: devices silent past their heartbeat interval get an offline alarm."""
    return heartbeats.check()


@shared_task(name="alarms.tasks.watch_outbox")
def watch_outbox() -> int:
    """Beat: show what waits for the outbox channels, and alarm on those failing too long."""
    return len(outbox_watch.watch())


@shared_task(name="alarms.tasks.fire_scheduled_alarm")
def fire_scheduled_alarm(scheduled_id: int) -> str | None:
    """Beat, on a scheduled alarm's schedule: raise it."""
    return schedules.fire(scheduled_id)
