"""The alarm's state machine: raise (or repeat), acknowledge, resolve, cancel.

Each transition runs in one transaction under the alarm's row lock, writes its timeline event,
queues the channels' follow-ups, and leaves side effects (tasks) to after commit. Nothing else
sets Alarm.status.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core import logs
from core.bulk_sql import insert_unless_taken
from escalation import routing
from notifications.delivery import follow_ups
from notifications.transports.base import ACKNOWLEDGED
from observability import instruments

from . import board, engine, storms
from .models import OPEN_STATUSES, Alarm, AlarmEvent, Claim, Status
from .timeline import Actor, event, record, record_all

Kind = AlarmEvent.Kind
log = logging.getLogger(__name__)


class BadEta(ValueError):
    """A claim's ETA out of range."""


class AlarmClosed(Exception):
    """The alarm is resolved or cancelled: it can no longer be acknowledged."""

    def __init__(self, alarm: Alarm):
        super().__init__(f"alarm is already {alarm.status}")
        self.alarm = alarm


@dataclass(frozen=True)
class Outcome:
    alarm: Alarm
    changed: bool
    created: bool = False
    reopened: bool = False


def raise_alarm(
    *,
    source: str,
    dedup_key: str,
    title: str,
    actor: Actor,
    message: str = "",
    severity: str = "critical",
    labels: dict | None = None,
    details: dict | None = None,
    device=None,
    site=None,
    room=None,
    policy=None,
    hold_seconds: float = 0,
) -> Outcome:
    """Open an alarm, or count another occurrence on the open one with the same dedup key.
    Inside a caller's transaction it adds no savepoint of its own: what it raises rolls that
    back (a group of raises gives each its own savepoint)."""
    payload = {"title": title, "message": message, "severity": severity,
               "labels": labels or {}, "details": details or {}}  # fmt: skip
    with logs.about_alarm(), transaction.atomic(savepoint=False):
        existing = _current_for_update(dedup_key)
        if existing and existing.status == Status.RESOLVED:
            return _reopen(existing, actor, payload, policy, hold_seconds)
        if existing:
            return Outcome(_add_occurrence(existing, actor), changed=False)
        alarm = Alarm(
            source=source,
            dedup_key=dedup_key,
            **payload,
            device=device,
            site=site or (room.site if room else device.site if device else None),
            room=room or (device.room if device else None),
            person=device.person if device else None,
        )
        logs.concerning(alarm.pk)
        # Routed before it is written, so the row is written once.
        routed, policies = _route_and_start(alarm, policy, hold_seconds)
        if not insert_unless_taken(alarm):
            return _lost_race(dedup_key, actor)
        triggered = event(alarm, Kind.TRIGGERED, f"Raised by {actor.name}", actor, source=source)
        record_all(triggered, _routed_event(alarm, routed, policies))
        engine.schedule(alarm)
        board.publish_new(alarm)
        instruments.alarm_raised(alarm)
        log.info("raised by %s: %s", actor.name, title,
                 extra={"source": source, "severity": alarm.severity})  # fmt: skip
        return Outcome(alarm, changed=True, created=True)


def _route_and_start(alarm: Alarm, policy, hold_seconds: float) -> tuple:
    """Route an alarm that starts (new, or fired again after its resolve), fold it into a storm
    when there is one, and start its escalation; return the routing and the policies it
    follows."""
    routed = routing.route(alarm, policy=policy)
    alarm.severity, alarm.silenced_by = routed.severity, routed.silenced_by
    policies = [] if alarm.silenced_by else routed.policies
    alarm.folded_into_id = None
    scope = storms.storm_scope(alarm.source) if storms.may_fold(alarm) else None
    if scope and policies:
        storm = storms.count_into_open_storm(scope, policies[0])
        storm = storm or raise_alarm(**storms.storm_alarm(alarm, scope, policies[0])).alarm
        alarm.silenced_by = f"the storm guard ({scope}): one digest in alarm {storm.pk}"
        alarm.folded_into_id = storm.pk
        policies = []
    engine.start(alarm, policies, hold_seconds)
    return routed, policies


# What a source that resends its alarms may change on an open one.
REPORTED_FIELDS = ("title", "message", "labels", "details")


def report(*, source: str, dedup_key: str, title: str, actor: Actor, **fields) -> Outcome:
    """A source's current view of an alarm it resends until it is over (Alertmanager, PagerDuty):
    open it; on an open one, update what changed, and change nothing when nothing did (repeats
    and HA duplicates are no-ops). The severity stays as routing decided it."""
    with logs.about_alarm(), transaction.atomic():
        existing = _open_alarm_for_update(dedup_key)
        if existing is None:
            return raise_alarm(
                source=source, dedup_key=dedup_key, title=title, actor=actor, **fields
            )
        logs.concerning(existing.pk)
        wanted = {
            "title": title,
            "message": fields.get("message", ""),
            "labels": fields.get("labels") or {},
            "details": fields.get("details") or {},
        }
        changed = [name for name in REPORTED_FIELDS if getattr(existing, name) != wanted[name]]
        if not changed:
            return Outcome(existing, changed=False)
        for name in changed:
            setattr(existing, name, wanted[name])
        existing.last_occurrence_at = timezone.now()
        existing.save(update_fields=[*changed, "last_occurrence_at"])
        record(existing, Kind.UPDATED, f"{', '.join(changed)} changed", actor)
        board.publish(existing)
        return Outcome(existing, changed=True)


def _routed_event(alarm: Alarm, routed, policies: list) -> AlarmEvent:
    if alarm.silenced_by:
        text = f"Silenced by {alarm.silenced_by} ({routed.reason}): nobody notified"
    elif len(policies) > 1:
        names = " + ".join(p.name for p in policies)
        text = f"Policies {names} in parallel: {routed.reason}"
    elif policies:
        text = f"Policy {policies[0].name}: {routed.reason}"
    else:
        text = f"No escalation policy ({routed.reason}): nobody notified"
    rules = [check.rule.pk for check in routed.checks if check.matched]
    policy_id = policies[0].pk if policies else None
    return event(alarm, Kind.ROUTED, text, policy_id=policy_id, rules=rules)


def _open_alarm_for_update(dedup_key: str) -> Alarm | None:
    return (
        Alarm.objects.select_for_update(no_key=True)
        .filter(dedup_key=dedup_key, status__in=OPEN_STATUSES)
        .first()
    )


def _current_for_update(dedup_key: str) -> Alarm | None:
    """The open alarm with this key, else the one resolved within FLAP_WINDOW_SECONDS (locked),
    in one query: the raise asks it for every new alarm. Written out, since building this
    query in the ORM cost more than a fifth of the web process's time under a storm; and for a
    new alarm, the usual case, no model is built."""
    since = timezone.now() - timedelta(seconds=settings.FLAP_WINDOW_SECONDS)
    lock = " FOR NO KEY UPDATE" if connection.vendor == "postgresql" else ""
    sql = (
        f"SELECT id FROM {Alarm._meta.db_table} WHERE dedup_key = %s"
        " AND (status IN (%s, %s) OR (status = %s AND resolved_at >= %s))"
        f" ORDER BY resolved_at DESC NULLS FIRST LIMIT 1{lock}"  # an open one first
    )
    params = [dedup_key, *OPEN_STATUSES, Status.RESOLVED,
              connection.ops.adapt_datetimefield_value(since)]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    return Alarm.objects.get(pk=found[0]) if found else None


# Sources that resend what they watch (a flapping check): an operator may damp their reopenings
# (`EscalationPolicy.damp_flapping`). A device's press always escalates again.
MONITORING_SOURCES = frozenset({"alertmanager", "pagerduty", "metric", "heartbeat"})


def _reopen(alarm: Alarm, actor: Actor, payload: dict, policy, hold_seconds: float) -> Outcome:
    """It fired again within FLAP_WINDOW_SECONDS of its resolve: the same alarm opens again,
    with what the source sent now, as a new cycle of its escalation, which starts again from
    the first step (routed anew: the hour or a silence may have changed). Damped (a monitoring
    source on a policy that asks for it), it tells the people already paged once instead."""
    logs.concerning(alarm.pk)
    paged = follow_ups.paged_people(alarm) if _may_damp(alarm) else []
    now, resolved_at = timezone.now(), alarm.resolved_at
    alarm.status, alarm.resolved_at, alarm.resolved_by = Status.TRIGGERED, None, ""
    alarm.acknowledged_at, alarm.acknowledged_by = None, ""
    alarm.late_claims_at = None
    alarm.occurrences += 1
    alarm.last_occurrence_at = alarm.reopened_at = now
    alarm.reopen_count += 1
    for name, value in payload.items():
        setattr(alarm, name, value)
    seconds = int((now - resolved_at).total_seconds())
    fired = f"Fired again {seconds} s after it was resolved"
    if paged:
        engine.stop(alarm)
        names = ", ".join(sorted({person.name for person, _ in paged}))
        text = f"{fired} (flapping, damped by {alarm.policy}): telling {names} once, no new steps"
        entries = [event(alarm, Kind.REOPENED, text, actor, damped=True)]
    else:
        # A new cycle opens new records (a ticket, an incident) rather than noting closed ones.
        alarm.external_refs = {}
        routed, policies = _route_and_start(alarm, policy, hold_seconds)
        entries = [
            event(alarm, Kind.REOPENED, f"{fired}: reopened, escalating from step 1", actor),
            _routed_event(alarm, routed, policies),
        ]
    try:
        with transaction.atomic():
            alarm.save()
    except IntegrityError:  # a concurrent raise opened a new alarm with this key first
        return _lost_race(alarm.dedup_key, actor)
    record_all(*entries)
    if paged:
        follow_ups.tell_fired_again(alarm, paged)
    engine.schedule(alarm)
    board.publish(alarm)
    instruments.alarm_raised(alarm)
    log.info("reopened by %s%s", actor.name, " (flapping, damped)" if paged else "")
    return Outcome(alarm, changed=True, reopened=True)


def _may_damp(alarm: Alarm) -> bool:
    return alarm.source in MONITORING_SOURCES and bool(alarm.policy and alarm.policy.damp_flapping)


def _lost_race(dedup_key: str, actor: Actor) -> Outcome:
    """A concurrent raise opened an alarm with this key first: this one is a repeat of it."""
    return Outcome(_add_occurrence(_open_alarm_for_update(dedup_key), actor), changed=False)


def _add_occurrence(alarm: Alarm, actor: Actor) -> Alarm:
    logs.concerning(alarm.pk)
    alarm.occurrences += 1
    alarm.last_occurrence_at = timezone.now()
    alarm.save(update_fields=["occurrences", "last_occurrence_at"])
    record(alarm, AlarmEvent.Kind.REPEATED, f"Occurrence {alarm.occurrences}", actor)
    board.publish(alarm)
    return alarm


def _locked(alarm_id, cycle: int | None = None) -> Alarm:
    """The alarm, locked; with `cycle` (what the caller was paged about: a reply code, a
    call), AlarmClosed when that cycle closed and the alarm has fired again since."""
    alarm = Alarm.objects.select_for_update(no_key=True).get(pk=alarm_id)
    if cycle is not None and alarm.reopen_count != cycle:
        raise AlarmClosed(alarm)
    return alarm


def acknowledge(alarm_id, actor: Actor, note: str = "", cycle: int | None = None) -> Outcome:
    """Acknowledge and stop escalation. Repeating it changes nothing; a closed alarm refuses."""
    with logs.about_alarm(alarm_id), transaction.atomic():
        alarm = _locked(alarm_id, cycle)
        if alarm.status == Status.ACKNOWLEDGED:
            return Outcome(alarm, changed=False)
        if alarm.status != Status.TRIGGERED:
            raise AlarmClosed(alarm)
        _acknowledge(alarm, actor, note)
        board.publish(alarm)
        return Outcome(alarm, changed=True)


def _acknowledge(alarm: Alarm, actor: Actor, note: str) -> None:
    alarm.status = Status.ACKNOWLEDGED
    alarm.acknowledged_at = timezone.now()
    alarm.acknowledged_by = actor.name
    engine.stop(alarm)
    alarm.save()
    record(alarm, AlarmEvent.Kind.ACKNOWLEDGED, note, actor)
    follow_ups.on_transition(alarm, ACKNOWLEDGED, actor.person)
    instruments.alarm_acknowledged(alarm)
    log.info("acknowledged by %s", actor.name)


# A claim's ETA, in minutes, at most (half a day).
MAX_ETA_MINUTES = 720


def claim(
    alarm_id, actor: Actor, eta_minutes: int | None = None, cycle: int | None = None
) -> Outcome:
    """A responder is on the way, arriving in `eta_minutes` when they said. The first claim
    acknowledges the alarm (escalation stops); later ones are kept beside it, and a person who
    claims again changes their ETA. `changed` says whether this claim acknowledged it. With a
    policy that escalates late claims, the alarm escalates again once every claim's ETA has
    passed and it is still open (`escalate_late_claims`), unless it was acknowledged before
    the first claim (someone took it on without an ETA)."""
    if eta_minutes is not None and not 0 < eta_minutes <= MAX_ETA_MINUTES:
        raise BadEta(f"1 to {MAX_ETA_MINUTES} minutes")
    with logs.about_alarm(alarm_id), transaction.atomic():
        alarm = _locked(alarm_id, cycle)
        if alarm.status not in OPEN_STATUSES:
            raise AlarmClosed(alarm)
        acknowledged = alarm.status == Status.TRIGGERED
        # Acknowledged plainly before (someone took it on, no ETA): never late.
        taken_on = not acknowledged and not alarm.claims.filter(cycle=alarm.reopen_count).exists()
        now = timezone.now()
        eta_at = now + timedelta(minutes=eta_minutes) if eta_minutes else None
        who = actor.person.name if actor.person else actor.name
        fields = {"name": who, "via": actor.name, "claimed_at": now, "eta_at": eta_at}
        if actor.person:
            Claim.objects.update_or_create(
                alarm=alarm, cycle=alarm.reopen_count, person=actor.person, defaults=fields
            )
        else:
            Claim.objects.create(alarm=alarm, cycle=alarm.reopen_count, **fields)
        eta = f", ETA {eta_minutes} min ({timezone.localtime(eta_at):%H:%M})" if eta_at else ""
        record(alarm, AlarmEvent.Kind.CLAIMED, f"{who} is on the way{eta}", actor,
               eta_at=eta_at.isoformat() if eta_at else None)  # fmt: skip
        alarm.late_claims_at = None if taken_on else _late_claims_at(alarm)
        if acknowledged:
            _acknowledge(alarm, actor, f"on the way{eta}")
        else:
            alarm.save(update_fields=["late_claims_at"])
        board.publish(alarm)
        return Outcome(alarm, changed=acknowledged)


def _late_claims_at(alarm: Alarm):
    """When every claim of this cycle is past its ETA, if the policy escalates then; None when
    it does not, or when someone on the way gave no ETA."""
    if not (alarm.policy and alarm.policy.escalate_late_claims):
        return None
    etas = list(alarm.claims.filter(cycle=alarm.reopen_count).values_list("eta_at", flat=True))
    return None if not etas or None in etas else max(etas)


def escalate_late_claims(alarm_id) -> Outcome:
    """Everyone who said they were on the way is past their ETA and the alarm is still open
    (claimed but not arrived): it is triggered again and escalates from the first step, as a
    new round. Does nothing to an alarm that was resolved, or claimed anew, meanwhile."""
    with logs.about_alarm(alarm_id), transaction.atomic():
        alarm = _locked(alarm_id)
        now = timezone.now()
        if not (alarm.status == Status.ACKNOWLEDGED and alarm.late_claims_at
                and alarm.late_claims_at <= now):  # fmt: skip
            return Outcome(alarm, changed=False)
        names = ", ".join(
            alarm.claims.filter(cycle=alarm.reopen_count).values_list("name", flat=True)
        )
        alarm.status, alarm.late_claims_at = Status.TRIGGERED, None
        alarm.acknowledged_at, alarm.acknowledged_by = None, ""
        escalating = engine.escalate_again(alarm)
        alarm.save()
        then = "escalating again from step 1" if escalating else "no steps to escalate"
        record(alarm, AlarmEvent.Kind.CLAIMS_LATE,
               f"Claimed by {names}, not resolved by the ETA: {then}")  # fmt: skip
        engine.schedule(alarm)
        board.publish(alarm)
        log.info("claimed but not arrived: %s", then)
        return Outcome(alarm, changed=True)


def resolve(alarm_id, actor: Actor, note: str = "", cycle: int | None = None) -> Outcome:
    """Close the alarm as handled; wins over a racing ACK because both take the row lock."""
    return _close(alarm_id, Status.RESOLVED, AlarmEvent.Kind.RESOLVED, actor, note, cycle)


def cancel(alarm_id, actor: Actor, note: str = "") -> Outcome:
    """Close the alarm as raised in error."""
    return _close(alarm_id, Status.CANCELLED, AlarmEvent.Kind.CANCELLED, actor, note)


def _close(alarm_id, status: str, kind: str, actor: Actor, note: str, cycle=None) -> Outcome:
    with logs.about_alarm(alarm_id), transaction.atomic():
        alarm = _locked(alarm_id, cycle)
        if alarm.status not in OPEN_STATUSES:
            return Outcome(alarm, changed=False)
        alarm.status = status
        alarm.resolved_at = timezone.now()
        alarm.resolved_by = actor.name
        alarm.late_claims_at = None
        engine.stop(alarm)
        alarm.save()
        record(alarm, kind, note, actor)
        follow_ups.on_transition(alarm, status, actor.person)
        board.publish(alarm)
        log.info("%s by %s", status, actor.name)
        return Outcome(alarm, changed=True)


def open_alarm(dedup_key: str) -> Alarm | None:
    return Alarm.objects.filter(dedup_key=dedup_key, status__in=OPEN_STATUSES).first()


def clear(dedup_key: str, actor: Actor, note: str = "") -> Outcome | None:
    """Resolve the open alarm with this dedup key, if there is one (a source's "all clear")."""
    alarm = open_alarm(dedup_key)
    if alarm is None:
        return None
    return resolve(alarm.pk, actor, note)
