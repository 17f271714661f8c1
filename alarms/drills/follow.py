"""Following one alarm as it happens, for the go-live test commands: its new timeline entries
and every change of its deliveries, as lines to print, and what its deliveries came to."""

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from alarms.models import Alarm, AlarmEvent
from notifications.models import Delivery

Kind = AlarmEvent.Kind
FINAL = (Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.CANCELLED)
# Shown from the delivery rows, which say more (attempts, retries, latency).
DELIVERY_KINDS = (Kind.DELIVERY_SENT, Kind.DELIVERY_FAILED)


@dataclass
class Follower:
    """Call `poll()` repeatedly: each call returns what happened since the last, in time order."""

    alarm: Alarm
    events: list[AlarmEvent] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    _shown: dict = field(default_factory=dict)

    def poll(self) -> list[str]:
        self.alarm.refresh_from_db()
        self.events = list(AlarmEvent.objects.filter(alarm_id=self.alarm.pk).order_by("at", "pk"))
        self.deliveries = list(
            Delivery.objects.filter(alarm_id=self.alarm.pk)
            .select_related("person", "channel")
            .order_by("pk")
        )
        lines = []
        for entry in self.events:
            if self._changed(("event", entry.pk), True) and entry.kind not in DELIVERY_KINDS:
                lines.append((entry.at, self.line(entry.at, entry.kind, describe_event(entry))))
        for row in self.deliveries:
            if self._changed(("delivery", row.pk), (row.status, row.attempts)):
                lines.append((row.updated_at, self.line(row.updated_at, "delivery", describe(row))))
        return [text for _, text in sorted(lines, key=lambda item: item[0])]

    def _changed(self, key, state) -> bool:
        if self._shown.get(key) == state:
            return False
        self._shown[key] = state
        return True

    def line(self, at: datetime, kind: str, text: str) -> str:
        since = (at - self.alarm.created_at).total_seconds()
        return f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}  +{since:7.2f} s  {kind:<16} {text}"

    def has(self, kind: str) -> bool:
        return any(entry.kind == kind for entry in self.events)

    def notifications(self) -> list[Delivery]:
        return [row for row in self.deliveries if row.event == Delivery.Event.NOTIFY]

    def first_sent(self) -> Delivery | None:
        sent = [row for row in self.notifications() if row.status == Delivery.Status.SENT]
        return min(sent, key=lambda row: row.sent_at) if sent else None

    def busy(self) -> list[Delivery]:
        return [row for row in self.notifications() if row.status not in FINAL]


def describe_event(entry: AlarmEvent) -> str:
    if entry.kind in (Kind.ACKNOWLEDGED, Kind.RESOLVED, Kind.CANCELLED):
        return f"by {entry.actor}" + (f": {entry.text}" if entry.text else "")
    return entry.text


def describe(row: Delivery) -> str:
    """One delivery: what, to whom (channel or person, method, address) and where it stands."""
    where = f"{row.what()} to {row.describe()}" + (f" <{row.address}>" if row.address else "")
    if row.status == Delivery.Status.SENT:
        latency = f", {row.latency_ms} ms" if row.latency_ms is not None else ""
        return f"{where}: sent ({row.provider_status or 'ok'}{latency})"
    if row.status == Delivery.Status.PENDING and row.attempts:
        return f"{where}: attempt {row.attempts} failed, retrying ({row.error})"
    if row.status in (Delivery.Status.FAILED, Delivery.Status.CANCELLED):
        return f"{where}: {row.status} after {row.attempts} attempt(s) ({row.error})"
    return f"{where}: {row.status}"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str


def follow_until(alarm: Alarm, judge, timeout: float, out, interval=0.2) -> Verdict:
    """Write to `out` what happens to the alarm until `judge(follower)` returns a verdict, or
    fail after `timeout` seconds saying what it is waiting for."""
    follower, deadline = Follower(alarm), time.monotonic() + timeout
    while True:
        for line in follower.poll():
            out.write(line)
        out.flush()  # shown as it happens, through a pipe too
        verdict = judge(follower)
        if verdict is not None:
            return verdict
        if time.monotonic() >= deadline:
            return Verdict(False, f"timed out after {timeout:g} s: {waiting_for(follower)}")
        time.sleep(interval)


def first_notification(follower: Follower) -> Verdict | None:
    """`firetestalarm`: done when the first notification went out, or when none can."""
    alarm = follower.alarm
    if sent := follower.first_sent():
        after = (sent.sent_at - alarm.created_at).total_seconds()
        return Verdict(True, f"{describe(sent)}, {after:.2f} s after the alarm was raised")
    if stopped := not_notifying(alarm):
        return Verdict(False, stopped)
    rows = follower.notifications()
    if not rows and follower.has(Kind.ESCALATION_ENDED):
        return Verdict(False, f"nobody reachable: {nobody_reached(alarm)}")
    if rows:
        first = min((row.round, row.step) for row in rows)
        step = [row for row in rows if (row.round, row.step) == first]
        if all(row.status in FINAL for row in step):
            return Verdict(False, "delivery failed: " + "; ".join(describe(row) for row in step))
    if not alarm.is_open:
        return Verdict(False, f"the alarm was {alarm.status} by {alarm.resolved_by} first")
    return None


def policy_run(follower: Follower) -> Verdict | None:
    """`escalationtest`: done when the policy's steps are exhausted (and their messages
    settled), or when the alarm was acknowledged or closed."""
    alarm = follower.alarm
    if stopped := not_notifying(alarm):
        return Verdict(False, stopped)
    if alarm.status == "acknowledged":
        return run_summary(follower, f"acknowledged by {alarm.acknowledged_by}")
    if not alarm.is_open:
        return run_summary(follower, f"{alarm.status} by {alarm.resolved_by}")
    if follower.has(Kind.ESCALATION_ENDED) and not follower.busy():
        return run_summary(follower, "every step ran")
    return None


def run_summary(follower: Follower, how: str) -> Verdict:
    skipped = [entry.text for entry in follower.events if entry.kind == Kind.STEP_SKIPPED]
    ran = len([entry for entry in follower.events if entry.kind == Kind.STEP_NOTIFIED])
    rows = follower.notifications()
    sent = [row for row in rows if row.status == Delivery.Status.SENT]
    failed = [row for row in rows if row.status == Delivery.Status.FAILED]
    text = (
        f"{how}; {ran} step(s) notified, {len(skipped)} reached nobody; "
        f"{len(sent)} of {len(rows)} notification(s) delivered"
    )
    problems = skipped + [describe(row) for row in failed]
    if problems:
        text += ". Problems: " + "; ".join(problems)
    return Verdict(not problems and bool(sent), text)


def not_notifying(alarm: Alarm) -> str:
    """Why this alarm notifies nobody at all ('' when it follows a policy with steps)."""
    if alarm.silenced_by:
        return f"silenced by {alarm.silenced_by}: nobody is notified"
    if alarm.policy_id is None and not alarm.steps_snapshot:
        return (
            "no route: no routing rule, no default policy of its device or site and no global "
            "default policy gives it an escalation policy"
        )
    if not alarm.steps_snapshot:
        return f"policy {alarm.policy} has no steps: nobody is notified"
    return ""


def nobody_reached(alarm: Alarm) -> str:
    return (
        f"every step of policy {alarm.policy} reached nobody (people inactive or without a "
        "contact point for the step's methods, no enabled channel for SMS or Signal, channels "
        "disabled)"
    )


def waiting_for(follower: Follower) -> str:
    """What the alarm is waiting for, when nothing conclusive happened in time."""
    alarm, now = follower.alarm, timezone.now()
    due = alarm.next_escalation_at
    busy = follower.busy()
    if due is not None and due < now - timedelta(seconds=1):
        return (
            f"the next step was due at {due:%H:%M:%S} and has not run: is the Celery worker "
            "running? (`celery -A alarmsite worker`; this command does not start one)"
        )
    if busy:
        waiting = "; ".join(describe(row) for row in busy)
        return f"not delivered yet: {waiting}. Is the worker running, the provider reachable?"
    if due is not None:
        return f"the next step is not due until {due:%H:%M:%S}: give a longer --timeout"
    return "nothing was delivered: is the Celery worker running?"
