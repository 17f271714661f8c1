"""The storm guard: when more alarms start within a window than a threshold allows (per source
kind, or all sources together), the ones after that notify nobody on their own. They are
stored, shown and acknowledgeable as always, but for each escalation policy they would have
followed, one storm alarm ("Alarm storm: 37 alarms from source alertmanager") collects them and
notifies that policy's targets once: one digest per target instead of one message per alarm.

Starts are counted in Redis, in windows of STORM_WINDOW_SECONDS (this window and the one
before, so a storm across a window's edge is still seen). Without Redis nothing is counted and
every alarm notifies on its own: the guard never holds back a message because it is blind.
"""

import logging
import time

import redis
from django.conf import settings
from django.db.models import CharField, F, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from core.redis_client import client

from .models import OPEN_STATUSES, Alarm
from .timeline import SYSTEM

log = logging.getLogger(__name__)

SOURCE = "storm"


def may_fold(alarm: Alarm) -> bool:
    """Whether the guard may fold this alarm: never a person's press (a desk phone's key, a
    panic button: a device that stands for a person), whatever storm rages; never a storm
    alarm itself."""
    return alarm.source != SOURCE and not stands_for_person(alarm.device)


def stands_for_person(device) -> bool:
    """A desk phone's key, a panic button: a device whose press is a person calling for help."""
    return device is not None and (device.kind == "yealink" or device.person_id is not None)


# The same, as a filter on alarms (the board sends a person's presses first).
PERSON_PRESS = Q(device__kind="yealink") | Q(device__person__isnull=False)


def guard_on() -> bool:
    window = settings.STORM_WINDOW_SECONDS
    return window > 0 and bool(settings.STORM_SOURCE_THRESHOLD or settings.STORM_GLOBAL_THRESHOLD)


def _count_keys(source: str) -> list[str]:
    """The counts of this window and the one before: for the source, then for all sources."""
    bucket = int(time.time() // settings.STORM_WINDOW_SECONDS)
    scopes = (f"source:{source}", "all")
    return [f"storm:{scope}:{b}" for scope in scopes for b in (bucket, bucket - 1)]


def scope_over(source: str, from_source: int, from_all: int) -> str | None:
    """The storm's scope when these many starts are over a threshold."""
    per_source, overall = settings.STORM_SOURCE_THRESHOLD, settings.STORM_GLOBAL_THRESHOLD
    if per_source and from_source > per_source:
        return f"source {source}"
    if overall and from_all > overall:
        return "all sources"
    return None


def storm_scope(source: str) -> str | None:
    """Count one more alarm start from this source; the storm's scope when over a threshold."""
    if not guard_on():
        return None
    keys, window = _count_keys(source), settings.STORM_WINDOW_SECONDS
    try:
        with client().pipeline() as pipe:
            pipe.incr(keys[0]).expire(keys[0], window * 2).get(keys[1])
            pipe.incr(keys[2]).expire(keys[2], window * 2).get(keys[3])
            source_now, _, source_before, all_now, _, all_before = pipe.execute()
    except redis.RedisError:
        log.warning("storm guard blind (Redis down): every alarm notifies on its own")
        return None
    return scope_over(source, source_now + int(source_before or 0), all_now + int(all_before or 0))


def counted_starts(source: str) -> tuple[int, int]:
    """The starts counted so far from this source and from all sources, read without counting
    one (the routing test page); raises redis.RedisError when Redis cannot be read."""
    source_now, source_before, all_now, all_before = client().mget(_count_keys(source))
    return int(source_now or 0) + int(source_before or 0), int(all_now or 0) + int(all_before or 0)


def storm_key(scope: str, policy) -> str:
    """The dedup key of the storm alarm for this scope and policy."""
    return f"storm:{scope}:{policy.pk}"


def count_into_open_storm(scope: str, policy) -> Alarm | None:
    """Inside the new alarm's transaction: one more alarm folded into the open storm alarm
    for this scope and policy; that alarm, or None when none is open (`storm_alarm` opens
    one)."""
    key = storm_key(scope, policy)
    counted = Alarm.objects.filter(dedup_key=key, status__in=OPEN_STATUSES).update(
        occurrences=F("occurrences") + 1,
        last_occurrence_at=timezone.now(),
        title=Concat(
            Value("Alarm storm: "), Cast(F("occurrences") + 1, CharField()),
            Value(f" alarms from {scope}"),
        ),
    )  # fmt: skip
    if counted:
        return Alarm.objects.only("pk", "title").get(dedup_key=key, status__in=OPEN_STATUSES)
    return None


def storm_alarm(first: Alarm, scope: str, policy) -> dict:
    """What the storm alarm opened by this first folded alarm is raised with."""
    return {
        "source": SOURCE,
        "dedup_key": storm_key(scope, policy),
        "title": f"Alarm storm: 1 alarms from {scope}",
        "message": f"More alarms than the storm guard allows started within "
        f"{settings.STORM_WINDOW_SECONDS} s; they notify nobody on their own. First: "
        f"{first.title}. Every one is on the board.",
        "severity": first.severity,
        "labels": {"storm": scope},
        "site": first.site,
        "policy": policy,
        "hold_seconds": settings.STORM_DIGEST_SECONDS,
        "actor": SYSTEM,
    }
