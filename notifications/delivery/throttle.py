"""No floods: at most N messages per contact point (a phone number, a topic) per window, per
method (`THROTTLE_LIMITS`). A page beyond a limit is held, not dropped: its row stays pending,
says which limit held it and until when, and goes when the window allows, carrying every other
page held for that contact point as one message ("4 more alarms: … reply 100a to acknowledge
all"). The first page of a critical alarm is never held; it still counts.

Counting and holding run inside the transaction that takes the delivery, under a lock per
contact point, so two workers cannot both send the last message a window allows."""

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from ..models import Delivery
from ..transports.base import NOTIFY, REPLY_METHODS, STAND_DOWN
from .queueing import enqueue_on_commit

Status = Delivery.Status
UNITS = {"s": 1, "m": 60, "h": 3600}
# Calls are held, never bundled: one call reads one alarm.
BUNDLES = REPLY_METHODS | {"email", "ntfy", "gotify"}
# A bundle carries every page held for its contact point, up to this many (a storm's); the
# rest go in the next.
BUNDLE_AT_MOST = 2000


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    def __str__(self):
        return f"{self.count} per {span(self.seconds)}"


def span(seconds: int) -> str:
    """A window as people say it: 15 min, 3 h, 30 s."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


@cache
def parse(text: str) -> tuple[Limit, ...]:
    """ "5/15m,11/1h" -> its limits; a malformed one is refused at start (settings checks)."""
    limits = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)/(\d+)([smh])", part)
        if not match or int(match[1]) < 1:
            raise ValueError(f"not a limit: {part!r} (e.g. 5/15m)")
        limits.append(Limit(int(match[1]), int(match[2]) * UNITS[match[3]]))
    return tuple(limits)


def limits_for(method: str) -> tuple[Limit, ...]:
    return parse(settings.THROTTLE_LIMITS.get(method, "") or "")


@dataclass(frozen=True)
class Held:
    limit: Limit
    until: object  # datetime


def never_held(delivery: Delivery) -> bool:
    """A message not to hold: anything but a page or a stand-down to a person, or a critical
    alarm's first page (its first step, first round)."""
    if delivery.event not in (NOTIFY, STAND_DOWN) or not delivery.person_id:
        return True
    first = delivery.event == NOTIFY and delivery.step == 0 and delivery.round == 0
    return first and delivery.alarm.severity == "critical"


def may_hold(delivery: Delivery) -> bool:
    """Whether a limit may hold this message: it is then taken only once written, in a
    transaction of its own (a batch of steps would take contact points' locks in any order)."""
    return not never_held(delivery) and bool(limits_for(delivery.method))


def check(delivery: Delivery, now) -> Held | None:
    """Inside the transaction taking the delivery: the limit that holds it now, with when it
    frees (the latest of those that hold), or None."""
    limits = limits_for(delivery.method)
    if not limits or never_held(delivery):
        return None
    _lock(delivery.method, delivery.address)
    longest = max(limit.seconds for limit in limits)
    recent = Q(status=Status.SENT, sent_at__gt=now - timedelta(seconds=longest))
    theirs = Delivery.objects.filter(
        recent | Q(status=Status.SENDING),
        method=delivery.method, address=delivery.address, bundled_into=None,
    ).exclude(pk=delivery.pk)  # fmt: skip
    # Those being sent count as sent now (taken by another worker, or earlier in this batch).
    went = sorted(at if status == Status.SENT else now
                  for status, at in theirs.values_list("status", "sent_at"))  # fmt: skip
    holding = None
    for limit in limits:
        within = [at for at in went if at > now - timedelta(seconds=limit.seconds)]
        if len(within) >= limit.count:
            # Free once enough of them left the window for one more.
            until = within[len(within) - limit.count] + timedelta(seconds=limit.seconds)
            if holding is None or until > holding.until:
                holding = Held(limit, until)
    return holding


def hold(delivery: Delivery, held: Held) -> None:
    """Keep it pending until the window frees, saying why; its task waits with a countdown."""
    delivery.status, delivery.next_attempt_at = Status.PENDING, held.until
    delivery.queued_until = None  # a countdown task: a worker holds it and may die with it
    delivery.held_by = f"{held.limit} to {delivery.address}"
    delivery.error = (
        f"held by the limit {held.limit} until {timezone.localtime(held.until):%H:%M:%S}"
    )
    delivery.save(update_fields=["status", "next_attempt_at", "queued_until", "held_by", "error",
                                 "updated_at"])  # fmt: skip
    countdown = (held.until - timezone.now()).total_seconds()
    enqueue_on_commit([delivery.pk], countdown=max(0.0, countdown))


def held_with(delivery: Delivery) -> list[Delivery]:
    """The other messages of its kind held for the same contact point, locked, for a bundle
    (pages of alarms still waiting for someone, or stand-downs), and those it carried when it
    was taken before (its sender died): they go with it again. Empty for a method that is not
    bundled."""
    if delivery.method not in BUNDLES or not delivery.held_by:
        return []
    held = Delivery.objects.filter(method=delivery.method, address=delivery.address,
                                   event=delivery.event)  # fmt: skip
    waiting = Q(status=Status.PENDING) & ~Q(held_by="")
    if delivery.event == NOTIFY:
        waiting &= Q(alarm__status="triggered")
    carried_before = Q(status=Status.SENDING, bundled_into=delivery)
    return list(
        held.filter(waiting | carried_before)
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("alarm", "alarm__site", "alarm__room")
        .exclude(pk=delivery.pk)
        .order_by("created_at", "pk")[: BUNDLE_AT_MOST - 1]
    )  # fmt: skip


def _lock(method: str, address: str) -> None:
    """One transaction at a time counts a contact point's messages (PostgreSQL; SQLite has one
    writer anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{method}:{address}"])


def volume(person) -> list[tuple[str, str, list[int], int]]:
    """What each of the person's contact points was sent lately: (method, address, messages in
    each of the method's windows, or 15 min / 1 h / 3 h without limits, pages held now)."""
    now = timezone.now()
    rows = Delivery.objects.filter(person=person)
    found = []
    for method, address in rows.values_list("method", "address").distinct().order_by("method"):
        mine = rows.filter(method=method, address=address)
        windows = [limit.seconds for limit in limits_for(method)] or [900, 3600, 10800]
        went = mine.filter(status=Status.SENT, bundled_into=None)
        counts = [went.filter(sent_at__gt=now - timedelta(seconds=s)).count() for s in windows]
        held = mine.filter(status=Status.PENDING).exclude(held_by="").count()
        found.append((method, address, list(zip(windows, counts, strict=True)), held))
    return found
