"""Stretches with nobody on call, for the configuration check and the admin."""

from datetime import datetime, timedelta

from django.utils import timezone

from .plans import plans, segments

LOOK_AHEAD = timedelta(days=14)


def gaps(kind: str, pk: int, start: datetime | None = None, end: datetime | None = None):
    """[(starts_at, ends_at)] with nobody on call in [start, end) (now to 14 days on)."""
    start = start or timezone.now()
    end = end or start + LOOK_AHEAD
    plan = plans()[(kind, pk)]
    return [(s.starts_at, s.ends_at) for s in segments(plan, start, end) if not s.people]


def describe(kind: str, pk: int, found: list, limit: int = 3) -> str:
    """ "Sat 10 Jan 18:00 – Mon 12 Jan 08:00, … (Europe/Berlin)" in the subject's zone."""
    tz = plans()[(kind, pk)].tz
    shown = [f"{start.astimezone(tz):%a %d %b %H:%M} – {end.astimezone(tz):%a %d %b %H:%M}"
             for start, end in found[:limit]]  # fmt: skip
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return f"{', '.join(shown)}{more} ({tz.key})"
