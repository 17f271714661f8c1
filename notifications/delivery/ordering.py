"""Order among deliveries. Posts to an `ordered` channel for one alarm go out one at a time,
and a follow-up waits for the posts before it, so a ticket is created once before it is noted
and closed. When a provider accepts messages again, those waiting out their backoff with it are
brought forward."""

import logging
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from ..models import BUSY, Delivery
from ..transports import transport_class
from ..transports.base import NOTIFY
from .queueing import enqueue_on_commit, queue_at

log = logging.getLogger(__name__)

Status = Delivery.Status

# A provider that failed leaves its messages waiting out their backoff, minutes once it has
# failed a few times. When it accepts messages again, up to this many of those waiting are
# brought forward at once (more each time it accepts more), so that it is not handed its whole
# backlog in one burst...
WAKE_AT_ONCE = 20
# ...each to this long after its last attempt: a message that failed as the provider recovered
# (its request was still hanging) goes soon too, and one that the provider keeps refusing while
# it accepts others is not tried again at the pace of the others.
WAKE_AFTER = timedelta(seconds=5)


def posted_to(delivery: Delivery):
    """The channel a delivery posts to (None for a message to a person)."""
    return None if delivery.person_id else delivery.channel


def ref_key(delivery: Delivery) -> str:
    """Where the alarm keeps what this delivery's channel gave it (a ticket's number)."""
    return f"channel:{delivery.channel_id}"


def ahead_of(delivery: Delivery) -> Delivery | None:
    """An earlier delivery to the same channel for this alarm that has not finished."""
    return (
        Delivery.objects.filter(
            alarm_id=delivery.alarm_id,
            channel_id=delivery.channel_id,
            person=None,
            pk__lt=delivery.pk,
            status__in=BUSY,
        )  # fmt: skip
        .order_by("pk")
        .first()
    )


def was_posted(delivery: Delivery) -> bool:
    """Whether a step of this cycle posted to the follow-up's channel."""
    return Delivery.objects.filter(
        alarm_id=delivery.alarm_id, cycle=delivery.cycle, channel_id=delivery.channel_id,
        person=None, event=NOTIFY, status=Status.SENT,
    ).exists()  # fmt: skip


def defer(delivery: Delivery, ahead: Delivery, now) -> None:
    """Wait for the delivery ahead; this costs no attempt."""
    wake = max(ahead.next_attempt_at or now, now) + timedelta(seconds=1)
    delivery.status, delivery.next_attempt_at = Status.PENDING, wake
    delivery.queued_until = None  # a countdown task: a worker holds it and may die with it
    delivery.save(update_fields=["status", "next_attempt_at", "queued_until", "updated_at"])
    enqueue_on_commit([delivery.pk], countdown=(wake - now).total_seconds())


def wake_next(delivery: Delivery) -> None:
    """A post to an ordered channel finished: the one waiting behind it may go now."""
    if delivery.person_id or not (
        delivery.channel and transport_class(delivery.channel.kind).ordered
    ):
        return
    waiting = (
        Delivery.objects.filter(
            alarm_id=delivery.alarm_id,
            channel_id=delivery.channel_id,
            person=None,
            pk__gt=delivery.pk,
            status=Status.PENDING,
        )  # fmt: skip
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is not None:
        queue_at([waiting], timezone.now())


def wake_waiting(sent: list[Delivery]) -> None:
    """Inside the transaction recording these messages sent: messages waiting out their
    backoff with the same providers (a channel or gateway; the mail server for email without
    one) are brought forward, so that after an outage they leave as the provider recovers.
    Not those it rate-limited: it asked for the wait."""
    providers = Q()
    for channel_id, method in {(row.channel_id, row.method) for row in sent}:
        providers |= Q(channel_id=channel_id) if channel_id else Q(channel=None, method=method)
    now = timezone.now()
    waiting = (
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(providers, status=Status.PENDING, attempts__gt=0, next_attempt_at__gt=now)
        .filter(next_attempt_at__gt=F("updated_at") + WAKE_AFTER)  # not brought forward yet
        .exclude(provider_status="HTTP 429")
        .order_by("next_attempt_at")
        .values_list("pk", "updated_at")[:WAKE_AT_ONCE]
    )
    woken = {}  # when -> the deliveries to go then (most go now, together)
    for pk, attempted in waiting:
        woken.setdefault(max(now, attempted + WAKE_AFTER), []).append(pk)
    for at, ids in woken.items():
        queue_at(ids, at)
    if woken:
        count = sum(len(ids) for ids in woken.values())
        log.info("%d messages waiting for a provider that accepts again go sooner", count)
