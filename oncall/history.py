"""The record of who was on call: written every minute as it happens (and read for any
instant in the recorded past), so the past answer is what was true then, not what today's
rules and rotation order would compute."""

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import OnCallShift, Recording
from .plans import Chosen, joined, plans, segments


def record(now: datetime | None = None) -> int:
    """Write who has been on call since each schedule's and rotation's last record; return how
    many shifts were opened or closed. Safe to run on several nodes at once (row locks)."""
    now = now or timezone.now()
    return sum(_record(plan, now) for plan in plans().values())


def _record(plan, now: datetime) -> int:
    subject = {f"{plan.kind}_id": plan.id}
    Recording.objects.get_or_create(kind=plan.kind, subject_id=plan.id,
                                    defaults={"since": now, "until": now})  # fmt: skip
    with transaction.atomic():
        recording = (
            Recording.objects.select_for_update(skip_locked=True)
            .filter(kind=plan.kind, subject_id=plan.id).first()
        )  # fmt: skip
        if recording is None or recording.until > now:
            return 0
        stretches = [(s.starts_at, s.people) for s in segments(plan, recording.until, now)]
        stretches.append((now, plan.evaluate(now)))
        shifts = OnCallShift.objects.filter(**subject)
        open_ = {(row.person_id, row.why): row for row in shifts.filter(ends_at=None)}
        written = 0
        for at, people in stretches:
            wanted = {(chosen.person_id, chosen.why): chosen for chosen in people}
            for key in [key for key in open_ if key not in wanted]:
                row = open_.pop(key)
                row.ends_at = at
                row.save(update_fields=["ends_at"])
                written += 1
            for key, chosen in wanted.items():
                if key not in open_:
                    open_[key] = OnCallShift.objects.create(
                        **subject, person_id=chosen.person_id,
                        person_name=chosen.name, why=chosen.why, starts_at=at,
                    )  # fmt: skip
                    written += 1
        recording.until = now
        recording.save(update_fields=["until"])
    return written


def recorded_at(kind: str, pk: int, at: datetime) -> tuple[Chosen, ...] | None:
    """Who the record says was on call at `at`, or None when `at` is outside what was
    recorded."""
    recording = Recording.objects.filter(kind=kind, subject_id=pk).first()
    if recording is None or not recording.since <= at < recording.until:
        return None
    rows = OnCallShift.objects.filter(**{f"{kind}_id": pk}, starts_at__lte=at).filter(
        Q(ends_at__gt=at) | Q(ends_at=None)
    )
    return tuple(Chosen(row.person_id, row.person_name, row.why) for row in rows)


def recorded_between(kind: str, pk: int, start: datetime, end: datetime):
    """The recorded stretches within [start, end), and where the record begins and stops
    within it (both `start` when none of it is recorded)."""
    recording = Recording.objects.filter(kind=kind, subject_id=pk).first()
    if recording is None or recording.until <= start or recording.since >= end:
        return [], start, start
    begin, stop = max(start, recording.since), min(end, recording.until)
    rows = list(
        OnCallShift.objects.filter(**{f"{kind}_id": pk}, starts_at__lt=stop)
        .filter(Q(ends_at__gt=begin) | Q(ends_at=None))
        .order_by("starts_at", "pk")
    )  # fmt: skip
    inside = {at for r in rows for at in (r.starts_at, r.ends_at) if at and begin < at < stop}

    def people_at(at):
        return tuple(Chosen(r.person_id, r.person_name, r.why) for r in rows
                     if r.starts_at <= at and (r.ends_at is None or r.ends_at > at))  # fmt: skip

    return joined(sorted({begin, *inside}), stop, people_at), begin, stop
