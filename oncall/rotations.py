"""A rotation's shifts: shift k starts at the anchor plus k shift lengths of wall-clock time in
the rotation's zone, so hand-offs stay at the same time of day across daylight-saving changes
(a 12-hour night shift is 13 hours long the night the clocks go back). Participants take turns
in order, wrapping; `offset` shifts whose turn it is, and reordering sets it so that whoever is
on call now finishes the shift."""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

from core.time_windows import local_instant

from .models import Rotation, RotationMember

UNIT = {"hours": timedelta(hours=1), "days": timedelta(days=1), "weeks": timedelta(weeks=1)}


@dataclass(frozen=True)
class Turn:
    person_id: int
    shift: int  # the shift's number, counted from the anchor
    position: int  # the participant's place, from 0
    of: int  # how many places there are


@dataclass(frozen=True)
class RotationPlan:
    """What a rotation needs to answer who is on call, read once from its rows."""

    id: int
    name: str
    tz: zoneinfo.ZoneInfo
    anchor: datetime  # naive wall-clock time of shift 0's start
    length: timedelta
    offset: int
    people: tuple[int, ...]  # person ids in order

    @classmethod
    def of(cls, rotation: Rotation, people: list[int]) -> "RotationPlan":
        return cls(
            id=rotation.pk,
            name=rotation.name,
            tz=zoneinfo.ZoneInfo(rotation.time_zone),
            anchor=datetime.combine(rotation.start_date, rotation.handoff_time),
            length=UNIT[rotation.shift_unit] * max(rotation.shift_length, 1),
            offset=rotation.offset,
            people=tuple(people),
        )

    def shift_start(self, shift: int) -> datetime:
        return local_instant(self.anchor + shift * self.length, self.tz)

    def shift_at(self, at: datetime) -> int:
        """The number of the shift that holds `at` (the last, where a skipped hour made some
        shifts empty)."""
        wall = at.astimezone(self.tz).replace(tzinfo=None)
        shift = (wall - self.anchor) // self.length
        while self.shift_start(shift) > at:
            shift -= 1
        while self.shift_start(shift + 1) <= at:
            shift += 1
        return shift

    def turn(self, at: datetime) -> Turn | None:
        if not self.people:
            return None
        shift = self.shift_at(at)
        position = (shift + self.offset) % len(self.people)
        return Turn(self.people[position], shift, position, len(self.people))

    def handoffs(self, start: datetime, end: datetime):
        """The hand-off instants in [start, end)."""
        shift = self.shift_at(start)
        while (at := self.shift_start(shift)) < end:
            if at >= start:
                yield at
            shift += 1


def plan_of(rotation: Rotation) -> RotationPlan:
    people = rotation.members.order_by("position", "pk").values_list("person_id", flat=True)
    return RotationPlan.of(rotation, list(people))


def set_participants(rotation: Rotation, person_ids: list[int], at: datetime) -> None:
    """Make these people the rotation's participants, in this order, so that whoever is on
    call at `at` stays on call until the next hand-off; if they left, the one after them in
    the old order takes the shift."""
    with transaction.atomic():
        before = plan_of(rotation).turn(at)
        rotation.members.all().delete()
        RotationMember.objects.bulk_create(
            RotationMember(rotation=rotation, person_id=pk, position=index)
            for index, pk in enumerate(person_ids)
        )
        keep_on_call(rotation, before, at)


def keep_on_call(rotation: Rotation, before: Turn | None, at: datetime) -> None:
    """After the participants changed: set the offset so that the turn at `at` is still
    `before`'s person's (or, if they left, stays at the same place)."""
    plan = plan_of(rotation)
    if before is None or not plan.people:
        return
    shift = plan.shift_at(at)
    position = before.position % len(plan.people)
    if plan.people[position] != before.person_id and before.person_id in plan.people:
        position = plan.people.index(before.person_id)
    offset = (position - shift) % len(plan.people)
    if offset != rotation.offset:
        rotation.offset = offset
        rotation.save(update_fields=["offset"])
