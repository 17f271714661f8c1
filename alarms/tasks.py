"""Celery tasks of the alarms app: thin wrappers over its domain modules."""

from celery import shared_task

from . import heartbeats


@shared_task(name="alarms.tasks.check_heartbeats")
def check_heartbeats() -> int:
    """Beat: devices silent past their heartbeat interval get an offline alarm."""
    return heartbeats.check()
