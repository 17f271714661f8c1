"""Every attempt of a delivery on record (`DeliveryAttempt`): when, what came of it, the
provider's status, latency and answer. A delivery keeps its last KEPT; the older ones are
counted on it by what came of them (`Delivery.earlier_attempts`), so a channel retried for
hours keeps a bounded record."""

from django.utils import timezone

from .models import Delivery, DeliveryAttempt

Outcome = DeliveryAttempt.Outcome


# A failed attempt that is tried again is on the alarm's timeline while it is one of the first
# few, then every tenth: a channel retried for hours adds a few lines an hour, not hundreds.
ON_TIMELINE_FIRST = 5


def on_timeline(number: int) -> bool:
    return number <= ON_TIMELINE_FIRST or number % 10 == 0


def of(delivery: Delivery, outcome: str, answer: str, at=None) -> DeliveryAttempt:
    """The record of the delivery's latest attempt (its fields hold what came of it)."""
    return DeliveryAttempt(
        delivery_id=delivery.pk, number=delivery.attempts, at=at or timezone.now(),
        outcome=outcome, provider_status=delivery.provider_status,
        latency_ms=delivery.latency_ms, answer=answer[:500],
    )  # fmt: skip


def record(tried: list[DeliveryAttempt], deliveries: list[Delivery]) -> None:
    """Inside the transaction that records the attempts' outcome: write them, and fold the
    oldest of a delivery tried more than KEPT times into its count."""
    DeliveryAttempt.objects.bulk_create(tried)
    for delivery in deliveries:
        if delivery.attempts > DeliveryAttempt.KEPT:
            _fold(delivery, delivery.attempts - DeliveryAttempt.KEPT)


def _fold(delivery: Delivery, up_to: int) -> None:
    old = DeliveryAttempt.objects.filter(delivery_id=delivery.pk, number__lte=up_to)
    folded = list(old.values_list("at", "outcome", "provider_status", "answer"))
    if not folded:
        return
    summary = dict(delivery.earlier_attempts or {})
    outcomes = dict(summary.get("outcomes", {}))
    for _, outcome, status, answer in folded:
        what = status or answer.split(":", 1)[0][:60] or outcome
        outcomes[what] = outcomes.get(what, 0) + 1
    first = min(at for at, *_ in folded).isoformat()
    summary.update(count=summary.get("count", 0) + len(folded), outcomes=outcomes,
                   first_at=summary.get("first_at", first))  # fmt: skip
    delivery.earlier_attempts = summary
    Delivery.objects.filter(pk=delivery.pk).update(earlier_attempts=summary)
    old.delete()
