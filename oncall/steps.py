"""An escalation step's schedules and rotations, resolved when the step runs: the people on
call then, and for the timeline who was chosen and why. A schedule with nobody on call sends
the step to its fallback person or, without one, to its team's default policy's first step;
it is never silently nowhere."""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from . import who
from .models import Team
from .plans import plans
from .rota import when
from .who import Answer, UnknownSubject, who_is_on_call

log = logging.getLogger(__name__)

ON_CALL = "on_call"
NOBODY_ON_CALL = "nobody_on_call"


@dataclass
class Resolved:
    person_ids: set = field(default_factory=set)
    channel_ids: set = field(default_factory=set)
    notes: list = field(default_factory=list)  # (ON_CALL | NOBODY_ON_CALL, text)


def resolve(step: dict, at: datetime) -> Resolved:
    """Whom the step's schedules and rotations name at `at` (nothing for a step without)."""
    resolved = Resolved()
    known = plans()
    for kind in ("schedule", "rotation"):
        for pk in step.get(f"{kind}_ids") or ():
            plan = known.get((kind, pk))
            if plan is None:
                continue  # deleted since the alarm started
            try:
                answer = who.answer_for(plan, at)
            except Exception:  # noqa: BLE001 (a rota that cannot be read must not stop the step)
                log.exception("could not tell who is on call in %s %s", kind, pk)
                answer = None
            if answer is None:
                text = _fall_back(plan, at, resolved, reason="could not be read")
                resolved.notes.append((NOBODY_ON_CALL, text))
            elif answer.people:
                resolved.person_ids.update(chosen.person_id for chosen in answer.people)
                resolved.notes.append((ON_CALL, describe(answer, plan.tz)))
            else:
                resolved.notes.append((NOBODY_ON_CALL, _fall_back(plan, at, resolved)))
    return resolved


def describe(answer: Answer, tz) -> str:
    """For the timeline: On call in schedule 'Reception': Bob Baker (Night: rotation
    'Reception', shift 2 of 3, until 07:00)."""
    people = []
    for chosen in answer.people:
        reasons = [chosen.why] if chosen.why else []
        if until := answer.until.get(chosen.person_id):
            reasons.append(f"until {when(until, answer.at, tz)}")
        people.append(f"{chosen.name} ({', '.join(reasons)})" if reasons else chosen.name)
    return f"On call in {answer.kind} '{answer.name}': {', '.join(people)}"


def _fall_back(plan, at: datetime, resolved: Resolved, reason: str = "") -> str:
    local = at.astimezone(plan.tz)
    text = f"Nobody on call in {plan.kind} '{plan.name}' at {local:%H:%M} ({plan.tz.key})"
    if reason:
        text = f"Who is on call in {plan.kind} '{plan.name}' {reason} at {local:%H:%M}"
    if plan.fallback_id and plan.fallback_id not in plan.inactive:
        resolved.person_ids.add(plan.fallback_id)
        return f"{text}: paging its fallback {plan.names.get(plan.fallback_id, '?')}"
    policy = _team_default(plan)
    first = policy and policy.steps.order_by("order").first()
    if first is None:
        return f"{text}, and it has no fallback: nobody is paged for it"
    people = set(first.persons.filter(active=True).values_list("pk", flat=True))
    for kind in ("schedule", "rotation"):  # their own gaps are not followed
        for pk in getattr(first, f"{kind}s").values_list("pk", flat=True):
            if (kind, pk) != (plan.kind, plan.id):
                try:
                    people.update(c.person_id for c in who_is_on_call(kind, pk, at).people)
                except UnknownSubject:
                    continue  # deleted meanwhile
    resolved.person_ids.update(people)
    resolved.channel_ids.update(first.channels.filter(enabled=True).values_list("pk", flat=True))
    return f"{text}: paging the first step of the team's default policy '{policy.name}'"


def _team_default(plan):
    team = Team.objects.select_related("default_policy").filter(pk=plan.team_id).first()
    return team.default_policy if team else None
