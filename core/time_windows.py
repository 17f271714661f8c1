"""Time windows of routing rules: days of the week and wall-clock hours in a time zone.

A window whose end is not after its start runs past midnight and belongs to the day it
starts on: "fri 22:00–06:00" holds on Saturday at 03:00, not on Friday at 03:00. Times are
compared on the local wall clock, so a window keeps its hours across daylight-saving changes.
"""

import zoneinfo
from datetime import datetime, time, timedelta

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


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name such as Europe/Berlin.")


def holds(at: datetime, days: str, start: time | None, end: time | None, tz: str) -> bool:
    """Whether the window (any day when `days` is empty, all day without hours) holds at `at`."""
    local = at.astimezone(zoneinfo.ZoneInfo(tz))
    allowed = parse_days(days) or set(range(7))
    clock = local.time().replace(tzinfo=None)
    if start is None or end is None:
        return local.weekday() in allowed
    if start < end:
        return start <= clock < end and local.weekday() in allowed
    # Past midnight: the evening part belongs to today, the morning part to yesterday.
    if clock >= start:
        return local.weekday() in allowed
    if clock < end:
        return (local.date() - timedelta(days=1)).weekday() in allowed
    return False
