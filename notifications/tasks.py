"""Celery tasks for notifications: thin wrappers over notifications.delivery."""

from celery import shared_task

from .delivery import sending, shift_notices


@shared_task(name="notifications.tasks.deliver")
def deliver(delivery_id: int) -> str | None:
    return sending.attempt(delivery_id)


@shared_task(name="notifications.tasks.send_shift_notices")
def send_shift_notices() -> int:
    """Beat, every minute: reminders before shifts and hand-off messages as they start."""
    return shift_notices.send_due()
