"""Celery tasks for notifications: thin wrappers over notifications.delivery."""

from celery import shared_task

from .delivery import sending


@shared_task(name="notifications.tasks.deliver")
def deliver(delivery_id: int) -> str | None:
    return sending.attempt(delivery_id)
