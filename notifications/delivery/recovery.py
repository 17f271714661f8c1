"""The sweeper's share of delivering: deliveries whose task was lost or whose sender died go
again, an outbox channel's provider is probed, and a lost queue frees every lease."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import liveness
from core.task_queue import RECOVERY_QUEUE, lease_until, release, unleased

from .. import outbox
from ..models import BUSY, Delivery, DeliveryAttempt
from .queueing import publish, queue_at

log = logging.getLogger(__name__)

Status = Delivery.Status


def retry_overdue(limit: int = 500) -> int:
    """Enqueue deliveries whose task was lost or whose sender died: their time is well past
    and no task of theirs is expected any more."""
    now = timezone.now()
    due = Delivery.objects.filter(status__in=BUSY, next_attempt_at__lte=now - timedelta(seconds=10))
    due = due.filter(unleased("queued_until", now))
    ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    if ids:
        Delivery.objects.filter(pk__in=ids).update(queued_until=lease_until(now))
        publish(ids)
    return len(ids)


def hand_back_from_dead() -> int:
    """Messages that a worker process which died (`liveness`) was sending are taken again
    now, through the sweeper's own queue, so they do not wait behind a backlog: one the
    provider took is recorded (`sent_marks`), the others go as a new attempt. Tasks it had
    taken from the queue died with it, so every due message's lease ends. Return how many."""
    now = timezone.now()
    sending = Delivery.objects.filter(status=Status.SENDING, next_attempt_at__gt=now)
    sending = sending.exclude(claimed_by="")
    gone = liveness.dead(set(sending.values_list("claimed_by", flat=True).distinct()))
    if not gone:
        return 0
    orphans = list(sending.filter(claimed_by__in=gone).values_list("pk", "attempts", "claimed_by"))
    ids = [pk for pk, _, _ in orphans]
    with transaction.atomic():
        lost = [DeliveryAttempt(delivery_id=pk, number=number, at=now,
                                outcome=DeliveryAttempt.Outcome.LOST,
                                answer=f"no answer: worker process {by} died while sending")
                for pk, number, by in orphans]  # fmt: skip
        DeliveryAttempt.objects.bulk_create(lost)
        # Still sending: taken again, one the provider took is recorded, not sent again.
        Delivery.objects.filter(pk__in=ids, status=Status.SENDING).update(
            next_attempt_at=now, queued_until=lease_until(now)
        )
        release(Delivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
                .exclude(pk__in=ids), "queued_until")  # fmt: skip
    publish(ids, queue=RECOVERY_QUEUE)
    log.warning("worker process %s died: %d messages it was sending go again",
                ", ".join(sorted(gone)), len(ids))  # fmt: skip
    return len(ids)


def probe_outboxes() -> int:
    """For each outbox channel whose messages all wait out their backoff (its provider
    failed), its oldest message goes now, at most every OUTBOX_PROBE_SECONDS: the provider's
    return is seen within seconds, not a backoff later, and the message it then accepts
    brings the others forward (`ordering.wake_waiting`). Return how many were brought
    forward."""
    now = timezone.now()
    probe = timedelta(seconds=settings.OUTBOX_PROBE_SECONDS)
    unfinished = outbox.unfinished()
    waiting = unfinished.filter(status=Status.PENDING, attempts__gt=0)
    probed = []
    for channel_id in set(waiting.values_list("channel_id", flat=True)):
        trying = unfinished.filter(channel_id=channel_id).filter(
            Q(status=Status.SENDING) | Q(next_attempt_at__lte=now + probe)
        )
        oldest = waiting.filter(channel_id=channel_id).order_by("pk").first()
        if oldest and not trying.exists() and oldest.updated_at <= now - probe:
            probed.append(oldest.pk)
    if probed:
        with transaction.atomic():
            queue_at(probed, now)
    return len(probed)


def forget_queued() -> None:
    """The queue was lost: no delivery's task is waiting any more."""
    release(Delivery.objects.all(), "queued_until")
