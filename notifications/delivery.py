"""Deliveries: one row per (alarm, step, round, target, method), then the attempts to send it.

An attempt claims its row (attempts + 1, a lease in `next_attempt_at`) and commits before
calling the transport, so no lock is held across the network. A worker that dies mid-send
leaves the row pending; once the lease runs out the sweeper tries it again, at most
DELIVERY_MAX_ATTEMPTS times in all.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alarms import board
from alarms.acklinks import issue_ack_link
from alarms.models import AlarmEvent
from alarms.timeline import record
from alarmsite.queue import enqueue
from devices.models import Person

from .messages import build_message
from .models import Delivery, NotificationChannel
from .transports import transport_class
from .transports.base import TransportError

log = logging.getLogger(__name__)


def create_for_step(alarm, step: dict, index: int, round_: int) -> list[Delivery]:
    """Create this step's deliveries (inside the escalation transaction) and return them all;
    the pending ones are enqueued on commit."""
    rows = []
    people = Person.objects.filter(pk__in=step["person_ids"], active=True)
    for person in people:
        for method in step["methods"]:
            rows.append(Delivery(person=person, target=f"person:{person.pk}", method=method))
    for channel in NotificationChannel.objects.filter(pk__in=step["channel_ids"], enabled=True):
        rows.append(Delivery(channel=channel, target=f"channel:{channel.pk}", method=channel.kind))
    now = timezone.now()
    deliveries = []
    for row in rows:
        row.alarm, row.step, row.round, row.next_attempt_at = alarm, index, round_, now
        row.address = _transport(row).address_for(row)
        if row.address:
            deliveries.append(row)
    # ignore_conflicts: a step that somehow runs twice finds its rows already there.
    Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    step_deliveries = list(
        Delivery.objects.filter(alarm=alarm, step=index, round=round_).select_related(
            "person", "channel"
        )
    )
    ids = [d.pk for d in step_deliveries if d.status == Delivery.Status.PENDING]
    transaction.on_commit(lambda: [enqueue("notifications.tasks.deliver", pk) for pk in ids])
    return step_deliveries


def _transport(delivery: Delivery):
    config = delivery.channel.config if delivery.channel else {}
    return transport_class(delivery.method)(config)


def _lease() -> timedelta:
    return timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS * 3 + 30)


def _backoff(attempts: int, retry_after: float | None) -> float:
    delay = settings.DELIVERY_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    # Honour a provider's Retry-After, but never let it park a delivery for more than an hour.
    return min(max(delay, retry_after or 0), 3600.0)


def attempt(delivery_id: int) -> str | None:
    """Try to send one delivery once; return its new status, or None if it was not ours to try."""
    claimed = _claim(delivery_id)
    if claimed is None:
        return None
    delivery, message = claimed
    try:
        response = _transport(delivery).send(delivery, message)
    except TransportError as exc:
        return _record_failure(delivery, message, exc)
    except Exception as exc:  # noqa: BLE001 (a transport bug must not lose the delivery)
        log.exception("transport %s crashed", delivery.method)
        return _record_failure(delivery, message, TransportError(f"internal error: {exc!r}"))
    return _record_success(delivery, message, response)


def _claim(delivery_id: int):
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("alarm", "alarm__site", "alarm__room", "alarm__person", "person")
            .select_related("alarm__device", "channel")
            .filter(pk=delivery_id, status=Delivery.Status.PENDING)
            .first()
        )
        now = timezone.now()
        if delivery is None or (delivery.next_attempt_at and delivery.next_attempt_at > now):
            return None
        if delivery.alarm.status != "triggered":
            delivery.status = Delivery.Status.CANCELLED
            delivery.error = f"not sent: the alarm was {delivery.alarm.status} first"
            delivery.save()
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + _lease()
        ack_url = issue_ack_link(delivery.alarm, delivery.person) if delivery.person else ""
        message = build_message(
            delivery.alarm, step=delivery.step, round_=delivery.round, ack_url=ack_url
        )
        delivery.message = message.stored_text()
        delivery.save()
    return delivery, message


def _record_success(delivery: Delivery, message, response: str) -> str:
    with transaction.atomic():
        delivery.status = Delivery.Status.SENT
        delivery.sent_at = timezone.now()
        delivery.next_attempt_at = None
        delivery.response = response
        delivery.error = ""
        delivery.save()
        record(
            delivery.alarm,
            AlarmEvent.Kind.DELIVERY_SENT,
            f"Sent to {delivery.describe()} ({delivery.address})",
            delivery_id=delivery.pk,
        )
        board.publish(delivery.alarm)
    return delivery.status


def _record_failure(delivery: Delivery, message, exc: TransportError) -> str:
    with transaction.atomic():
        delivery.error = exc.message
        final = exc.permanent or delivery.attempts >= settings.DELIVERY_MAX_ATTEMPTS
        if final:
            delivery.status = Delivery.Status.FAILED
            delivery.next_attempt_at = None
            why = "permanent error" if exc.permanent else f"{delivery.attempts} attempts"
            record(
                delivery.alarm,
                AlarmEvent.Kind.DELIVERY_FAILED,
                f"Failed to reach {delivery.describe()} after {why}: {exc.message}",
                delivery_id=delivery.pk,
            )
            board.publish(delivery.alarm)
        else:
            delay = _backoff(delivery.attempts, exc.retry_after)
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            transaction.on_commit(
                lambda: enqueue("notifications.tasks.deliver", delivery.pk, countdown=delay)
            )
        delivery.save()
    return delivery.status


def retry_overdue(limit: int = 500) -> int:
    """Enqueue pending deliveries whose task was lost (their time is well past)."""
    cutoff = timezone.now() - timedelta(seconds=10)
    ids = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=cutoff)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        enqueue("notifications.tasks.deliver", pk)
    return len(ids)
