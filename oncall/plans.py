"""Schedules and rotations as plans: their rows read once into plain objects that answer who
is on call at an instant without touching the database. Each process keeps them until the
configuration changes (`core.config_cache`)."""

import zoneinfo
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from core.config_cache import kept
from core.time_windows import local_instant, parse_days, window_day
from devices.models import Person

from .models import Override, Rotation, RotationMember, Schedule, ScheduleRule, TemporarySchedule
from .rotations import RotationPlan

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Chosen:
    """A person on call, and why ("Night shift: rotation 'Nurses', shift 3 of 5")."""

    person_id: int
    name: str
    why: str


@dataclass(frozen=True)
class RulePlan:
    label: str
    days: frozenset
    start: time | None
    end: time | None
    active_from: date | None
    active_until: date | None
    person_id: int | None
    rotation: RotationPlan | None

    def holds(self, wall: datetime) -> bool:
        day = window_day(wall, self.start, self.end)
        return (
            day is not None
            and day.weekday() in self.days
            and (self.active_from is None or day >= self.active_from)
            and (self.active_until is None or day <= self.active_until)
        )

    def boundaries(self, day: date, tz) -> list[datetime]:
        """Where this rule's window on `day` may begin or end."""
        if self.start is None:
            return [local_instant(datetime.combine(day, time()), tz)]
        end_day = day if self.start < self.end else day + DAY
        return [
            local_instant(datetime.combine(day, self.start), tz),
            local_instant(datetime.combine(end_day, self.end), tz),
        ]


@dataclass(frozen=True)
class Span:
    starts_at: datetime
    ends_at: datetime
    person_id: int | None = None  # an override's person (added, or covering)
    replaces_id: int | None = None
    kind: str = ""
    note: str = ""
    shifts: tuple = ()  # a temporary schedule's (person id, starts_at, ends_at)

    def holds(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


class Spans:
    """Overrides or temporary schedules in order of their start, found by bisection: a
    schedule keeps years of them and still answers in microseconds."""

    def __init__(self, spans: list[Span]):
        self.spans = sorted(spans, key=lambda span: span.starts_at)
        self.starts = [span.starts_at for span in self.spans]
        self.longest = max((span.ends_at - span.starts_at for span in spans), default=DAY)

    def __iter__(self):
        return iter(self.spans)

    def holding(self, at: datetime) -> list[Span]:
        return [span for span in self.starting(at - self.longest, at, last=True) if span.holds(at)]

    def starting(self, start: datetime, end: datetime, last: bool = False) -> list[Span]:
        """Those starting in [start, end) (in [start, end] with `last`)."""
        high = (bisect_right if last else bisect_left)(self.starts, end)
        return self.spans[bisect_left(self.starts, start) : high]


@dataclass
class SchedulePlan:
    id: int
    name: str
    tz: zoneinfo.ZoneInfo
    layers: list[tuple[int, list[RulePlan]]]  # highest first
    overrides: Spans
    temporaries: Spans
    names: dict[int, str]  # person id -> name, for every person it may choose
    inactive: frozenset  # people who are never notified: they are not on call
    fallback_id: int | None
    team_id: int | None
    kind: str = "schedule"

    def evaluate(self, at: datetime) -> tuple[Chosen, ...]:
        """Who is on call at `at`: a temporary schedule's shifts alone; else the highest layer
        with a rule holding, then the overrides."""
        for temporary in self.temporaries.holding(at):
            why = "temporary schedule" + (f" ({temporary.note})" if temporary.note else "")
            return tuple(
                self._chosen(pk, why) for pk, start, end in temporary.shifts
                if start <= at < end and pk not in self.inactive
            )  # fmt: skip
        wall = at.astimezone(self.tz).replace(tzinfo=None)
        chosen: dict[int, str] = {}
        for layer, rules in self.layers:
            holding = [rule for rule in rules if rule.holds(wall)]
            for rule in holding:
                why = [f"layer {layer}"] if len(self.layers) > 1 else []
                why += [rule.label] if rule.label else []
                if rule.rotation is None:
                    chosen.setdefault(rule.person_id, ": ".join(why))
                elif turn := rule.rotation.turn(at):
                    why.append(f"rotation '{rule.rotation.name}', shift {turn.position + 1} of "
                               f"{turn.of}")  # fmt: skip
                    chosen.setdefault(turn.person_id, ": ".join(why))
            if holding:
                break
        for override in self.overrides.holding(at):
            chosen = self._apply(override, chosen)
        return tuple(self._chosen(pk, why) for pk, why in chosen.items() if pk not in self.inactive)

    def _apply(self, override: Span, chosen: dict) -> dict:
        note = f" ({override.note})" if override.note else ""
        if override.kind == Override.Kind.ADD:
            return {**chosen, override.person_id: chosen.get(override.person_id, "added" + note)}
        if override.replaces_id not in chosen:
            return chosen  # removing or replacing someone not on call changes nothing
        if override.kind == Override.Kind.REMOVE:
            return {pk: why for pk, why in chosen.items() if pk != override.replaces_id}
        covered = self.names.get(override.replaces_id, "?")
        replaced = {}  # the substitute takes the place (and the order) of the one covered
        for pk, why in chosen.items():
            if pk == override.replaces_id:
                replaced.setdefault(override.person_id, f"covers {covered}{note}")
            elif pk != override.person_id:
                replaced[pk] = why
        return replaced

    def _chosen(self, person_id: int, why: str) -> Chosen:
        return Chosen(person_id, self.names.get(person_id, "?"), why)

    def boundaries(self, start: datetime, end: datetime) -> set[datetime]:
        """Every instant in [start, end) where who is on call may change."""
        found = set()
        first = start.astimezone(self.tz).date() - DAY
        days = [first + DAY * n for n in range((end.astimezone(self.tz).date() - first).days + 2)]
        for _, rules in self.layers:
            for rule in rules:
                for day in days:
                    found.update(rule.boundaries(day, self.tz))
                if rule.rotation:
                    found.update(rule.rotation.handoffs(start, end))
        spans = [*self.overrides.starting(start - self.overrides.longest, end),
                 *self.temporaries.starting(start - self.temporaries.longest, end)]  # fmt: skip
        for span in spans:
            found.update((span.starts_at, span.ends_at))
            found.update(at for _, shift_start, shift_end in span.shifts
                         for at in (shift_start, shift_end))  # fmt: skip
        return {at for at in found if start <= at < end}


@dataclass
class RotationSubject:
    """A rotation targeted on its own: whoever has the turn."""

    rotation: RotationPlan
    names: dict[int, str]
    inactive: frozenset
    kind: str = "rotation"
    fallback_id: int | None = None
    team_id: int | None = None

    @property
    def id(self) -> int:
        return self.rotation.id

    @property
    def name(self) -> str:
        return self.rotation.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return self.rotation.tz

    def evaluate(self, at: datetime) -> tuple[Chosen, ...]:
        turn = self.rotation.turn(at)
        if turn is None or turn.person_id in self.inactive:
            return ()
        why = f"rotation '{self.name}', shift {turn.position + 1} of {turn.of}"
        return (Chosen(turn.person_id, self.names.get(turn.person_id, "?"), why),)

    def boundaries(self, start: datetime, end: datetime) -> set[datetime]:
        return set(self.rotation.handoffs(start, end))


@dataclass(frozen=True)
class Segment:
    starts_at: datetime
    ends_at: datetime
    people: tuple[Chosen, ...]


def segments(plan, start: datetime, end: datetime) -> list[Segment]:
    """Who is on call from `start` to `end`, as the stretches in which it does not change."""
    return joined(sorted(plan.boundaries(start, end) | {start}), end, plan.evaluate)


def joined(points: list[datetime], end: datetime, people_at) -> list[Segment]:
    """The stretches from each of the sorted `points` to the next (the last to `end`), with
    `people_at(point)` on call, those in a row with the same people joined into one."""
    found: list[Segment] = []
    for index, at in enumerate(points):
        people = people_at(at)
        ends_at = points[index + 1] if index + 1 < len(points) else end
        if found and found[-1].people == people:
            found[-1] = Segment(found[-1].starts_at, ends_at, people)
        else:
            found.append(Segment(at, ends_at, people))
    return found


def plans() -> dict:
    """{("schedule" | "rotation", id): plan} for every schedule and rotation."""
    return kept("on-call plans", read)


def read() -> dict:
    people = {p.pk: p for p in Person.objects.only("pk", "name", "active")}
    names = {pk: person.name for pk, person in people.items()}
    inactive = frozenset(pk for pk, person in people.items() if not person.active)
    members: dict[int, list[int]] = {}
    places = RotationMember.objects.order_by("rotation", "position", "pk")
    for rotation_id, person_id in places.values_list("rotation_id", "person_id"):
        members.setdefault(rotation_id, []).append(person_id)
    rows = list(Rotation.objects.all())
    rotations = {r.pk: RotationPlan.of(r, members.get(r.pk, [])) for r in rows}
    found = {
        ("rotation", r.pk): RotationSubject(rotations[r.pk], names, inactive, team_id=r.team_id)
        for r in rows
    }
    rules, overrides, temporaries = {}, {}, {}
    for rule in ScheduleRule.objects.all():
        rules.setdefault(rule.schedule_id, []).append(rule)
    for o in Override.objects.order_by("starts_at", "pk"):
        overrides.setdefault(o.schedule_id, []).append(
            Span(o.starts_at, o.ends_at, o.person_id, o.replaces_id, o.kind, o.note)
        )
    for t in TemporarySchedule.objects.prefetch_related("shifts"):
        shifts = tuple((s.person_id, s.starts_at, s.ends_at) for s in t.shifts.all())
        temporaries.setdefault(t.schedule_id, []).append(
            Span(t.starts_at, t.ends_at, note=t.note, shifts=shifts)
        )
    for schedule in Schedule.objects.all():
        layers: dict[int, list[RulePlan]] = {}
        for rule in rules.get(schedule.pk, []):
            layers.setdefault(rule.layer, []).append(_rule_plan(rule, rotations))
        found[("schedule", schedule.pk)] = SchedulePlan(
            id=schedule.pk,
            name=schedule.name,
            tz=zoneinfo.ZoneInfo(schedule.time_zone),
            layers=sorted(layers.items(), key=lambda item: -item[0]),
            overrides=Spans(overrides.get(schedule.pk, [])),
            temporaries=Spans(temporaries.get(schedule.pk, [])),
            names=names,
            inactive=inactive,
            fallback_id=schedule.fallback_person_id,
            team_id=schedule.team_id,
        )
    return found


def _rule_plan(rule: ScheduleRule, rotations: dict) -> RulePlan:
    return RulePlan(
        label=rule.name,
        days=frozenset(parse_days(rule.days) or range(7)),
        start=rule.start_time,
        end=rule.end_time,
        active_from=rule.active_from,
        active_until=rule.active_until,
        person_id=rule.person_id,
        rotation=rotations.get(rule.rotation_id),
    )
