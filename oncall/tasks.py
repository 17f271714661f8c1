"""Celery tasks of the on-call app: thin wrappers over its domain modules."""

from celery import shared_task

from . import history


@shared_task(name="oncall.tasks.record")
def record() -> int:
    """Beat, every minute: write who has been on call since the last record."""
    return history.record()
