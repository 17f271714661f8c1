"""Driving deliveries by hand in tests, as the worker would: run a step, attempt what is due."""

import pytest
from django.utils import timezone

from alarms import engine
from alarms.models import Alarm
from notifications.delivery import sending
from notifications.models import Delivery, NotificationChannel


def run_step(alarm) -> list[Delivery]:
    """Run the alarm's next step now and return its deliveries (by channel name)."""
    Alarm.objects.filter(pk=alarm.pk).update(next_escalation_at=timezone.now())
    assert engine.run_due_step(alarm.pk)
    alarm.refresh_from_db()
    rows = Delivery.objects.filter(
        alarm=alarm, cycle=alarm.reopen_count, event="notify", step=alarm.current_step
    )
    return list(rows.order_by("channel__name"))


def make_due(row: Delivery) -> None:
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())


def send(row: Delivery) -> Delivery:
    """Attempt it now (as the worker would once it is due) and return the updated row."""
    make_due(row)
    sending.attempt(row.pk)
    row.refresh_from_db()
    return row


def send_only(alarm) -> Delivery:
    """Attempt the alarm's one delivery now and return the row as stored."""
    (row,) = Delivery.objects.filter(alarm=alarm)
    sending.attempt(row.pk)
    row.refresh_from_db()
    return row


def send_pending(alarm) -> list[str]:
    """Attempt every delivery of the alarm that is waiting; return their new statuses."""
    pending = Delivery.objects.filter(alarm=alarm, status="pending").order_by("pk")
    return [sending.attempt(pk) for pk in pending.values_list("pk", flat=True)]


def drain(alarm, rounds: int = 10) -> None:
    """Let time pass: attempt every unfinished delivery of the alarm, oldest first, until all
    are done (retries and waits included)."""
    for _ in range(rounds):
        busy = Delivery.objects.filter(alarm=alarm, status__in=["pending", "sending"])
        if not busy.exists():
            return
        for row in busy.order_by("pk"):
            send(row)
    pytest.fail("deliveries still unfinished after draining")


def make_channel(kind: str, name: str | None = None, **config) -> NotificationChannel:
    """A channel saved as the admin saves it: validated, defaults filled in."""
    channel = NotificationChannel(kind=kind, name=name or f"{kind} gateway", config=config)
    channel.full_clean()
    channel.save()
    return channel
