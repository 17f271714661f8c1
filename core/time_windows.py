"""Time windows of routing rules: days of the week and wall-clock hours in a time zone.

A window whose end is not after its start runs past midnight and belongs to the day it
starts on: "fri 22:00–06:00" holds on Saturday at 03:00, not on Friday at 03:00. Times are
compared on the local wall clock, so a window keeps its hours across daylight-saving changes.
"""

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(text: str) -> set[int]:
    """Weekday numbers (Monday 0) from "mon-fri", "sat,sun", "mon,wed-fri"; empty: none."""
    days = set()
    for part in (text or "").lower().replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValidationError(f"{part!r} is not a day or a range of days such as mon-fri.")
        start, end = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        # A range may wrap around the week: fri-mon.
        days.update((start + offset) % 7 for offset in range((end - start) % 7 + 1))
    return days


def validate_days(value: str) -> None:
    parse_days(value)


def default_time_zone() -> str:
    return settings.TIME_ZONE


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as Europe/Berlin.")


def holds(at: datetime, days: str, start: time | None, end: time | None, tz: str) -> bool:
    """Whether the window (any day when `days` is empty, all day without hours) holds at `at`."""
    local = at.astimezone(zoneinfo.ZoneInfo(tz)).replace(tzinfo=None)
    day = window_day(local, start, end)
    return day is not None and day.weekday() in (parse_days(days) or set(range(7)))


def window_day(local: datetime, start: time | None, end: time | None) -> date | None:
    """The day whose window (all day without hours) holds this local wall-clock time, or None."""
    if start is None or end is None:
        return local.date()
    clock = local.time()
    if start < end:
        return local.date() if start <= clock < end else None
    # Past midnight: the evening part belongs to today, the morning part to yesterday.
    if clock >= start:
        return local.date()
    if clock < end:
        return local.date() - timedelta(days=1)
    return None


def local_instant(wall: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """The instant (in UTC) a naive wall-clock time names in `tz`. A time repeated as the clocks
    go back is its first occurrence; a time skipped as they go forward is the first instant
    after the gap (02:30 on that night is 03:00)."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    minute = timedelta(minutes=1)  # inside a gap: walk back to where it ends (at most its length)
    while (instant - minute).astimezone(tz).replace(tzinfo=None) > wall:
        instant -= minute
    return instant
