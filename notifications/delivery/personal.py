"""A person's own rules (`devices.NotificationRule`) where a step's methods say "personal":
each contact point at its delay after the step, for the alarm's urgency. The messages are the
step's rows, written at once and due at their delay: unique, retried and audited like any, and
an ACK cancels every one not yet sent. A contact point that cannot be used (none given, muted
by STOP, no gateway) is skipped, and when the first usable one was due later it goes at once:
nobody waits minutes because their first choice does not work."""

from dataclasses import dataclass

from django.utils import timezone

from devices.models import NotificationRule, urgency_of

from ..models import Delivery
from ..transports import PERSONAL
from ..transports.base import NOTIFY
from .queueing import queue_at

Status = Delivery.Status
# Whom a step's "personal" reaches who has no rules for the alarm's urgency: by email at once.
WITHOUT_RULES = (("email", 0),)


@dataclass(frozen=True)
class Reach:
    method: str
    gateway: object
    address: str
    delay_seconds: int


def rules_of(person_ids) -> dict[int, list[tuple[str, str, int]]]:
    """(urgency, method, delay in minutes) of each of these people's rules, in one query."""
    found: dict[int, list] = {}
    rows = NotificationRule.objects.filter(person_id__in=person_ids).order_by("delay_minutes", "pk")
    for person_id, urgency, method, delay in rows.values_list(
        "person_id", "urgency", "method", "delay_minutes"
    ):
        found.setdefault(person_id, []).append((urgency, method, delay))
    return found


def plan(person, methods, severity: str, rules, targets_of) -> tuple[list[Reach], list[str]]:
    """How a step with these methods reaches the person: the methods it names at once and,
    with "personal", the person's rules for the alarm's urgency; and what to tell the timeline
    of contact points that could not be used. `targets_of(methods)` yields (method, gateway,
    address) for those that can go out to the person now."""
    forced = [m for m in methods if m != PERSONAL]
    reach = [Reach(m, g, a, 0) for m, g, a in targets_of(forced) if a]
    if PERSONAL not in methods:
        return reach, []
    urgency = urgency_of(severity)
    wanted = [(m, d * 60) for u, m, d in rules if u == urgency] or list(WITHOUT_RULES)
    taken, skipped, mine = {r.method for r in reach}, [], []
    for method, delay in wanted:
        if method in taken:
            continue
        usable = next(((m, g, a) for m, g, a in targets_of([method]) if a), None)
        if usable is None:
            skipped.append(method)
            continue
        taken.add(method)
        mine.append(Reach(*usable, delay))
    first_due = min(delay for _, delay in wanted)
    notes = []
    if mine and mine[0].delay_seconds > first_due:
        mine[0] = Reach(mine[0].method, mine[0].gateway, mine[0].address, first_due)
        notes.append(f"{person.name} cannot be reached by {', '.join(skipped)}: "
                     f"{mine[0].method} goes at once instead")  # fmt: skip
    elif skipped:
        notes.append(f"{person.name} cannot be reached by {', '.join(skipped)}")
    if not reach and not mine:
        notes = [f"{person.name} cannot be reached: no working contact point "
                 f"({', '.join(skipped) or 'none given'})"]  # fmt: skip
    return reach + mine, notes


def fail_over(delivery) -> tuple[str, bool]:
    """Inside the transaction recording that a message to a person failed for good: the
    person's next contact point for this step goes now, rather than at its delay. Return
    what the timeline should add, and whether the person cannot be reached (nothing of
    theirs is left for this step)."""
    if not delivery.person_id or delivery.event != NOTIFY:
        return "", False
    theirs = Delivery.objects.filter(
        alarm_id=delivery.alarm_id, cycle=delivery.cycle, event=NOTIFY, step=delivery.step,
        round=delivery.round, person_id=delivery.person_id,
    ).exclude(pk=delivery.pk)  # fmt: skip
    now = timezone.now()
    waiting = theirs.filter(status=Status.PENDING, next_attempt_at__gt=now)
    following = waiting.order_by("next_attempt_at", "pk").first()
    if following is not None:
        queue_at([following.pk], now)
        return f"; trying {following.method} now instead", False
    if theirs.filter(status__in=[Status.PENDING, Status.SENDING, Status.SENT]).exists():
        return "", False
    return "", True
