"""Who is on call: the one answer that escalation, the board, the API and the admin all ask.

For now and the future it is computed from the plans; for the recorded past it is what
`history` wrote then. A computed answer says until when each person stays on call, and is
kept on its plan until the next change, so a storm of steps asks the rules once.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.utils import timezone

from . import history
from .plans import DAY, Chosen, Segment, plans, segments

# The recorder runs every minute: anything older than this has been recorded.
RECORDED_AFTER = timedelta(minutes=2)
# How far ahead `until` is looked for; beyond, a shift "goes on".
HORIZON = timedelta(days=8)


@dataclass(frozen=True)
class Answer:
    kind: str  # schedule | rotation
    id: int
    name: str
    at: datetime
    people: tuple[Chosen, ...]
    until: dict  # person id -> when they stop being on call (None: not within HORIZON)
    changes_at: datetime | None  # the next instant at which the answer changes
    recorded: bool = False  # read from the record of the past

    @property
    def nobody(self) -> bool:
        return not self.people


class UnknownSubject(LookupError):
    pass


def who_is_on_call(kind: str, pk: int, at: datetime | None = None) -> Answer:
    """Who the schedule or rotation has on call at `at` (now when not given)."""
    return answer_for(_plan(kind, pk), at)


def answer_for(plan, at: datetime | None = None) -> Answer:
    """`who_is_on_call` for a caller that holds the plan already (a step, among many)."""
    now = timezone.now()
    at = at or now
    if at < now - RECORDED_AFTER:
        people = history.recorded_at(plan.kind, plan.id, at)
        if people is not None:
            return Answer(plan.kind, plan.id, plan.name, at, people, {}, None, recorded=True)
    return computed(plan, at)


def _plan(kind: str, pk: int):
    plan = plans().get((kind, pk))
    if plan is None:
        raise UnknownSubject(f"No {kind} {pk}.")
    return plan


def stretches(kind: str, pk: int, start: datetime, end: datetime) -> list[Segment]:
    """Who is on call from `start` to `end`, as stretches in which it does not change: the
    recorded past as it was recorded, the rest computed."""
    plan = _plan(kind, pk)
    recorded, begin, stop = [], start, start
    if start < timezone.now() - RECORDED_AFTER:
        recorded, begin, stop = history.recorded_between(kind, pk, start, end)
    before = segments(plan, start, begin) if begin > start else []
    after = segments(plan, stop, end) if stop < end else []
    return before + recorded + after


def computed(plan, at: datetime) -> Answer:
    last = getattr(plan, "last_answer", None)
    # Without a change in sight the answer holds only as far as it looked.
    if last and last.at <= at < (last.changes_at or last.at + HORIZON):
        return replace(last, at=at)
    people = plan.evaluate(at)
    until, changes_at = _until(plan, at, people)
    answer = Answer(plan.kind, plan.id, plan.name, at, people, until, changes_at)
    plan.last_answer = answer  # one reference swapped: safe for the threads sharing the plan
    return answer


def _until(plan, at: datetime, people: tuple) -> tuple[dict, datetime | None]:
    """When each person stops being on call, and when the answer first changes, looking a day
    at a time up to HORIZON."""
    left = {chosen.person_id for chosen in people}
    until: dict = dict.fromkeys(left)
    changes_at = None
    start = at
    while start < at + HORIZON and (left or changes_at is None):
        for instant in sorted(plan.boundaries(start, start + DAY)):
            if instant <= at:
                continue
            then = plan.evaluate(instant)
            if changes_at is None and then != people:
                changes_at = instant
            for pk in left - {chosen.person_id for chosen in then}:
                until[pk] = instant
            left &= {chosen.person_id for chosen in then}
            if not left and changes_at is not None:
                break
        start += DAY
    return until, changes_at
