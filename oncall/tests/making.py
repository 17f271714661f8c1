"""Builders for on-call tests: instants written as local wall-clock times, and rotations and
schedules made in one call."""

import zoneinfo
from datetime import date, datetime, time

from oncall.models import Override, Rotation, RotationMember, Schedule, ScheduleRule
from oncall.who import who_is_on_call

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def at(text: str, tz: str = BERLIN) -> datetime:
    """'2026-03-29 02:00' in the zone, as an aware instant (the first, if repeated)."""
    return datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(tz))


def rotation(people, start="2026-01-05", handoff="08:00", unit="days", length=1, tz=BERLIN,
             name="Nurses") -> Rotation:  # fmt: skip
    made = Rotation.objects.create(
        name=name, time_zone=tz, start_date=date.fromisoformat(start),
        handoff_time=time.fromisoformat(handoff), shift_unit=unit, shift_length=length,
    )  # fmt: skip
    for position, person in enumerate(people):
        RotationMember.objects.create(rotation=made, person=person, position=position)
    return made


def schedule(*rules, tz=BERLIN, name="Ward", **fields) -> Schedule:
    """schedule(dict(person=…, days=…, start="19:00", end="07:00", layer=0), …)."""
    made = Schedule.objects.create(name=name, time_zone=tz, **fields)
    for rule in rules:
        rule = dict(rule)
        for key in ("start", "end"):
            if key in rule:
                rule[f"{key}_time"] = time.fromisoformat(rule.pop(key))
        ScheduleRule.objects.create(schedule=made, **rule)
    return made


def override(schedule, kind, starts, ends, person=None, replaces=None, tz=BERLIN, note=""):
    made = Override(schedule=schedule, kind=kind, person=person, replaces=replaces,
                    starts_at=at(starts, tz), ends_at=at(ends, tz), note=note)  # fmt: skip
    made.full_clean()
    made.save()
    return made


def on_call(subject, when: datetime) -> list[str]:
    kind = "rotation" if isinstance(subject, Rotation) else "schedule"
    return [chosen.name for chosen in who_is_on_call(kind, subject.pk, when).people]
