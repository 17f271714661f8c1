"""A board card: everything the page shows of one alarm, as plain data it renders as text."""

from django.db.models import Prefetch

from notifications.models import Delivery

from .. import storms
from ..models import SEVERITY_RANK, Alarm, AlarmEvent, Claim

# The label that names what fired, as the source calls it: two PagerDuty alarms titled alike
# differ by their `origin` (the event's `source`).
NAME_LABELS = {"alertmanager": "alertname", "pagerduty": "origin"}
# A card carries this many labels at most, each value cut to this length: the snapshot of
# every open alarm stays small.
CARD_LABELS, CARD_LABEL_LENGTH = 12, 120
CARD_MESSAGE_LENGTH, CARD_DELIVERIES = 2000, 20


def _iso(value):
    return value.isoformat() if value else None


def card(alarm: Alarm, deliveries=None, reopened_after=None, nobody_on_call="") -> dict:
    """Everything a board card shows; plain data, rendered as text by the page.
    `reopened_after`: seconds from its last resolve to its last reopening, when known;
    `nobody_on_call`: what its timeline said when a step found nobody on call."""
    deliveries = list(alarm.deliveries.all() if deliveries is None else deliveries)
    claims = [c for c in alarm.claims.all() if c.cycle == alarm.reopen_count]
    return {
        "id": str(alarm.pk),
        "title": alarm.title,
        "message": alarm.message[:CARD_MESSAGE_LENGTH],
        "severity": alarm.severity,
        "severity_rank": SEVERITY_RANK.get(alarm.severity, 9),
        "status": alarm.status,
        "source": alarm.source,
        "site": alarm.site.name if alarm.site else "",
        "site_id": alarm.site_id,
        "room": alarm.room.name if alarm.room else "",
        "person": alarm.person.name if alarm.person else "",
        "device": alarm.device.name if alarm.device else "",
        # A person's press stands in a band of its own above every other alarm.
        "person_press": storms.stands_for_person(alarm.device),
        "storm": alarm.source == storms.SOURCE,
        "folded_into": str(alarm.folded_into_id) if alarm.folded_into_id else None,
        "source_name": source_name(alarm),
        "labels": [
            [name, str(value)[:CARD_LABEL_LENGTH]]
            for name, value in list((alarm.labels or {}).items())[:CARD_LABELS]
        ],
        "occurrences": alarm.occurrences,
        "created_at": _iso(alarm.created_at),
        "last_occurrence_at": _iso(alarm.last_occurrence_at or alarm.created_at),
        "reopen_count": alarm.reopen_count,
        "reopened_at": _iso(alarm.reopened_at),
        "reopened_after_seconds": reopened_after,
        "acknowledged_by": alarm.acknowledged_by,
        "acknowledged_at": _iso(alarm.acknowledged_at),
        "resolved_by": alarm.resolved_by,
        "resolved_at": _iso(alarm.resolved_at),
        "step": alarm.current_step + 1,
        "steps": len(alarm.steps_snapshot),
        "round": alarm.current_round + 1,
        "policy": alarm.policy.name if alarm.policy else "",
        "team_id": alarm.policy.team_id if alarm.policy else None,
        "nobody_on_call": nobody_on_call,
        "unreachable": unreachable(alarm, deliveries),
        # Who is on the way, and when they expect to be there (the page counts down).
        "claims": [
            {"name": c.name, "claimed_at": _iso(c.claimed_at), "eta_at": _iso(c.eta_at)}
            for c in claims
        ],
        "silenced_by": alarm.silenced_by,
        "next_escalation_at": _iso(alarm.next_escalation_at),
        "deliveries": [
            {
                "target": str(d.person or d.channel or d.target),
                "method": d.method,
                "event": d.event,
                "status": d.status,
                "step": d.step + 1,
                "round": d.round + 1,
                "error": d.error[:200],
            }
            for d in deliveries[-CARD_DELIVERIES:]
        ],
        "deliveries_before": max(0, len(deliveries) - CARD_DELIVERIES),
    }


def unreachable(alarm: Alarm, deliveries) -> list[str]:
    """Who this cycle's steps could not reach at all: every message to them failed."""
    outcomes: dict[str, set] = {}
    for d in deliveries:
        if d.person_id and d.event == "notify" and d.cycle == alarm.reopen_count:
            outcomes.setdefault(d.person.name if d.person else d.target, set()).add(d.status)
    return sorted(name for name, statuses in outcomes.items() if statuses == {"failed"})


def source_name(alarm: Alarm) -> str:
    """What fired, in the source's own words (Alertmanager's alertname, PagerDuty's source)."""
    labels = alarm.labels or {}
    name = labels.get(NAME_LABELS.get(alarm.source, ""), "")
    return str(name)[:CARD_LABEL_LENGTH]


def cards_of(alarms) -> list[dict]:
    """The cards of these alarms (a queryset), read with what they show in a few queries."""
    deliveries = Delivery.objects.select_related("person", "channel")
    alarms = alarms.select_related("site", "room", "person", "device", "policy")
    claims = Prefetch("claims", Claim.objects.order_by("claimed_at", "id"))
    alarms = list(alarms.prefetch_related(Prefetch("deliveries", deliveries), claims))
    after, gaps = reopened_after(alarms), nobody_on_call(alarms)
    return [card(a, reopened_after=after.get(a.pk), nobody_on_call=gaps.get(a.pk, ""))
            for a in alarms]  # fmt: skip


def _pages_on_call(alarm: Alarm) -> bool:
    return any("schedule_ids" in step or "rotation_ids" in step
               for step in alarm.steps_snapshot or ())  # fmt: skip


def nobody_on_call(alarms) -> dict:
    """For each alarm whose step found nobody on call since it last (re)opened, what its
    timeline said of the last time (one query for them all: such events are rare)."""
    # Only steps that name schedules or rotations write such events: most alarms need no query.
    since = {a.pk: a.reopened_at or a.created_at for a in alarms if _pages_on_call(a)}
    if not since:
        return {}
    found = {}
    events = AlarmEvent.objects.filter(alarm_id__in=since, kind=AlarmEvent.Kind.NOBODY_ON_CALL)
    for alarm_id, at, text in events.order_by("at").values_list("alarm_id", "at", "text"):
        if at >= since[alarm_id]:
            found[alarm_id] = text
    return found


def reopened_after(alarms) -> dict:
    """For each reopened alarm, the seconds between the resolve before its last reopening and
    that reopening (a reopening clears `resolved_at`; its timeline keeps the resolve)."""
    reopened = {a.pk: a.reopened_at for a in alarms if a.reopened_at}
    if not reopened:
        return {}
    resolves = AlarmEvent.objects.filter(alarm_id__in=reopened, kind=AlarmEvent.Kind.RESOLVED)
    last_resolve = {}
    for alarm_id, at in resolves.order_by("at").values_list("alarm_id", "at"):
        if at <= reopened[alarm_id]:
            last_resolve[alarm_id] = at  # in time order: the last one kept is the latest
    return {
        alarm_id: max(0, round((reopened[alarm_id] - at).total_seconds()))
        for alarm_id, at in last_resolve.items()
    }
