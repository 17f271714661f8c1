"""A rota as people read it: the stretches of who is on call cut into days of a time zone,
each day a list of "07:00–19:00 Alice Adams (…)" entries."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from core.time_windows import local_instant


@dataclass(frozen=True)
class Entry:
    starts: str  # "07:00"
    ends: str  # "19:00", or "24:00" for the end of the day
    people: tuple  # (name, why) pairs; empty: nobody on call

    @property
    def text(self) -> str:
        who = ", ".join(f"{name} ({why})" if why else name for name, why in self.people)
        return f"{self.starts}–{self.ends} {who or 'nobody'}"


def day_bounds(day: date, tz) -> tuple[datetime, datetime]:
    return (local_instant(datetime.combine(day, time()), tz),
            local_instant(datetime.combine(day + timedelta(days=1), time()), tz))  # fmt: skip


def by_day(stretches, tz, first: date, count: int) -> list[tuple[date, list[Entry]]]:
    """Each of `count` days from `first`, with its entries in order."""
    days = []
    for offset in range(count):
        day = first + timedelta(days=offset)
        start, end = day_bounds(day, tz)
        entries = []
        for stretch in stretches:
            begins, ends = max(stretch.starts_at, start), min(stretch.ends_at, end)
            if begins >= ends:
                continue
            people = tuple((c.name, c.why) for c in stretch.people)
            entries.append(Entry(_clock(begins, tz), "24:00" if ends == end else _clock(ends, tz),
                                 people))  # fmt: skip
        days.append((day, entries))
    return days


def _clock(at: datetime, tz) -> str:
    return f"{at.astimezone(tz):%H:%M}"


def when(instant: datetime, now: datetime, tz) -> str:
    """ "07:00" within the next 20 hours of `now`, else "Tue 08 Dec 07:00"."""
    local = instant.astimezone(tz)
    if instant - now < timedelta(hours=20):
        return f"{local:%H:%M}"
    return f"{local:%a %d %b %H:%M}"
