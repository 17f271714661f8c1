"""The escalation engine: the database holds the clock, queues only speed it up.

It moves an alarm's escalation state (the policy and its steps' snapshot, the position, the next
step's time, its token and lease); `lifecycle` moves its status. Policies, steps and routing
are configured in `escalation/`.

An alarm carries a snapshot of its policy's steps, the position it has reached, when the next
step is due (`next_escalation_at`) and a token that changes with every step. `run_due_step`
runs under the alarm's row lock and does nothing unless the alarm is still triggered, due, and
(for countdown tasks) still carries the token the task was scheduled with, so a duplicate, late
or stale task never notifies twice.
"""

import copy
import logging
import math
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import logs
from core.bulk_sql import update_many
from core.config_cache import kept, one_version
from core.task_queue import enqueue, enqueue_once, lease_until, release, unleased
from escalation.models import EscalationStep
from notifications.delivery import queueing, sending, targets
from observability import instruments
from oncall import steps as on_call

from . import board
from .models import Alarm, AlarmEvent, Status
from .timeline import event, record, record_all, written_together

log = logging.getLogger(__name__)

# A countdown task may arrive a little early; treat a step due within this as due.
EARLY_TOLERANCE = timedelta(milliseconds=250)
# A step due longer ago than this is run by whichever countdown task comes first.
OVERDUE = timedelta(seconds=1)

# Steps due at once are run by one queued drain task, many alarms per transaction.
DRAIN_TASK = "escalation.tasks.drain"
DRAIN_PENDING = "alarmbroker:drain-pending"  # set while a drain task waits in the queue
DRAIN_PENDING_SECONDS = 10.0  # how long a lost drain (purged, reserved by a killed worker) blocks
DRAIN_BATCH = 50


def snapshot(policy) -> list[dict]:
    """The policy's steps as an alarm keeps them: a copy of what this process keeps (an alarm
    may change its own, `shorten_delays`)."""
    snapshots = kept("policy steps", dict)  # policy id -> its steps, filled as policies are used
    if policy.pk not in snapshots:
        snapshots[policy.pk] = _read_snapshot(policy)
    return copy.deepcopy(snapshots[policy.pk])


def _read_snapshot(policy) -> list[dict]:
    steps = list(policy.steps.order_by("order").values("pk", "order", "delay_seconds", "methods"))
    step_ids = [step["pk"] for step in steps]
    persons = _linked(EscalationStep.persons.through, "person_id", step_ids)
    channels = _linked(EscalationStep.channels.through, "notificationchannel_id", step_ids)
    schedules = _linked(EscalationStep.schedules.through, "schedule_id", step_ids)
    rotations = _linked(EscalationStep.rotations.through, "rotation_id", step_ids)
    snapshots = []
    for step in steps:
        snapshot = {
            "order": step["order"],
            "delay_seconds": step["delay_seconds"],
            "person_ids": sorted(persons.get(step["pk"], [])),
            "methods": list(step["methods"]),
            "channel_ids": sorted(channels.get(step["pk"], [])),
        }
        # Whom they name is resolved when the step runs; most steps name none.
        for key, linked in (("schedule_ids", schedules), ("rotation_ids", rotations)):
            if linked.get(step["pk"]):
                snapshot[key] = sorted(linked[step["pk"]])
        snapshots.append(snapshot)
    return snapshots


def _linked(through, column: str, step_ids: list[int]) -> dict[int, list[int]]:
    """{step id: ids it names} from one of the steps' many-to-many tables."""
    links = {}
    rows = through.objects.filter(escalationstep_id__in=step_ids)
    for step_id, target_id in rows.values_list("escalationstep_id", column):
        links.setdefault(step_id, []).append(target_id)
    return links


def merged_snapshot(policies: list) -> list[dict]:
    """Several policies in parallel as one schedule: every step at the time its own policy
    gives it (counted from the trigger), in time order, each delay recomputed from the step
    before; each step names its policy."""
    timed = []
    for rank, policy in enumerate(policies):
        at = 0
        for step in snapshot(policy):
            at += step["delay_seconds"]
            timed.append((at, rank, {**step, "policy": policy.name}))
    timed.sort(key=lambda item: item[:2])
    merged, before = [], 0
    for at, _, step in timed:
        merged.append({**step, "delay_seconds": at - before})
        before = at
    return merged


def start(alarm: Alarm, policies: list, hold_seconds: float = 0) -> None:
    """Attach the policies (the first is the alarm's policy; more run in parallel) to an alarm
    that starts (new, or fired again after its resolve) before its row is written: a snapshot
    of their steps and the first step's time (not sooner than `hold_seconds`). `schedule` it
    once the row is written. Repeats follow the first policy."""
    policy = policies[0] if policies else None
    alarm.current_step, alarm.current_round = -1, 0
    alarm.policy = policy
    if len(policies) > 1:
        alarm.steps_snapshot = merged_snapshot(policies)
    else:
        alarm.steps_snapshot = snapshot(policy) if policy else []
    alarm.repeat_count = policy.repeat_count if policy else 0
    alarm.repeat_after_seconds = policy.repeat_after_seconds if policy else 0
    if alarm.steps_snapshot:
        _schedule(alarm, max(alarm.steps_snapshot[0]["delay_seconds"], hold_seconds))
    else:
        stop(alarm)


def shorten_delays(alarm: Alarm, delay_of, actor) -> None:
    """For a test run of a policy (`manage.py escalationtest`), inside the transaction that
    raised the alarm: every delay of its snapshot and the pause between rounds become
    `delay_of(seconds)`, and its first step moves to the new time. Only this alarm's copy of
    the policy changes; the policy itself is untouched."""
    if not alarm.steps_snapshot or alarm.current_step != -1:
        return
    before = [step["delay_seconds"] for step in alarm.steps_snapshot]
    for step in alarm.steps_snapshot:
        step["delay_seconds"] = delay_of(step["delay_seconds"])
    # A whole number of seconds: the field is an integer.
    alarm.repeat_after_seconds = math.ceil(delay_of(alarm.repeat_after_seconds))
    _schedule(alarm, alarm.steps_snapshot[0]["delay_seconds"])  # a new token: the old task idles
    alarm.save(update_fields=["steps_snapshot", "repeat_after_seconds", *STEP_FIELDS])
    after = [step["delay_seconds"] for step in alarm.steps_snapshot]
    text = (
        f"Step delays shortened for a test: {_seconds(after)} (the policy has {_seconds(before)})"
    )
    record(alarm, AlarmEvent.Kind.UPDATED, text, actor)
    board.publish(alarm)
    schedule(alarm)


def escalate_again(alarm: Alarm) -> bool:
    """Run the steps again from the first, now, as a new round (its messages are new ones);
    the caller saves the alarm and `schedule`s it. False when there are no steps."""
    if not alarm.steps_snapshot:
        return False
    alarm.current_step, alarm.current_round = -1, alarm.current_round + 1
    _schedule(alarm, 0)
    return True


def _seconds(delays: list) -> str:
    return ", ".join(f"{delay:g}" for delay in delays) + " s"


def stop(alarm: Alarm) -> None:
    """Cancel further steps (the caller saves inside its transaction)."""
    alarm.next_escalation_at = None
    alarm.escalation_token = None
    alarm.step_queued_until = None


def _schedule(alarm: Alarm, delay_seconds: float) -> None:
    alarm.next_escalation_at = timezone.now() + timedelta(seconds=delay_seconds)
    alarm.escalation_token = uuid.uuid4()
    # Due at once, its task waits in the queue (nothing holds it elsewhere): the sweeper leaves
    # it to that task. A countdown task is held by a worker, which may die with it: the sweeper
    # takes such a step as soon as it is due.
    alarm.step_queued_until = lease_until(alarm.next_escalation_at) if delay_seconds <= 0 else None


def schedule(alarm: Alarm) -> None:
    """Once the transaction commits, a countdown task for the next step if it is due soon (the
    fast path); the sweeper covers the rest."""
    if alarm.next_escalation_at is None:
        return
    delay = max(0.0, (alarm.next_escalation_at - timezone.now()).total_seconds())
    if delay > settings.ESCALATION_COUNTDOWN_MAX:
        return
    alarm_id, token = str(alarm.pk), str(alarm.escalation_token)

    def publish():
        # A step due at once waits for the drain, which takes many alarms per transaction;
        # a later one gets a countdown task of its own.
        if delay <= 0:
            queued = ask_for_drain()
        else:
            queued = enqueue("escalation.tasks.escalate", alarm_id, token, countdown=delay)
        if not queued:
            release(Alarm.objects.filter(pk=alarm_id, escalation_token=token), "step_queued_until")

    transaction.on_commit(publish)


def _next_position(alarm: Alarm) -> tuple[int, int] | None:
    """(step index, round) after the current one, or None when the policy is exhausted."""
    index, round_ = alarm.current_step + 1, alarm.current_round
    if index < len(alarm.steps_snapshot):
        return index, round_
    if round_ < alarm.repeat_count:
        return 0, round_ + 1
    return None


# What a step changes on the alarm.
STEP_FIELDS = [
    "current_step",
    "current_round",
    "next_escalation_at",
    "escalation_token",
    "step_queued_until",
]


def run_due_step(alarm_id, token=None, send_first: bool = False) -> bool:
    """Run the alarm's next step if it is due; return whether a step ran.

    Its deliveries are queued once it commits. With `send_first` the step claims its first
    delivery and sends it here, sparing the first message a trip through the queue; the board
    then hears of the step and that message together."""
    with logs.about_alarm(alarm_id), board.batched():
        with transaction.atomic():
            alarm = _due_alarm(alarm_id, token)
            if alarm is None:
                return False
            first = _step(alarm, "countdown" if token else "sweep", send_first)
            update_many([alarm], STEP_FIELDS)
        sending.send(first)
    return True


def run_countdown(alarm_id, token) -> bool:
    """The countdown task's step, if the alarm still carries `token`, together with every step
    overdue by more than OVERDUE (its own task waits behind slow sends): steps that fall due
    together then run together, not one after another behind each other's first messages.
    Return whether a step ran."""
    mine = Q(pk=alarm_id, escalation_token=token)
    overdue = Q(next_escalation_at__lte=timezone.now() - OVERDUE)
    return run_due_now(Alarm.objects.filter(mine | overdue), via="countdown") > 0


def run_due_now(alarms=None, via: str = "queue", limit: int = DRAIN_BATCH) -> int:
    """Steps due now for up to `limit` of these alarms (all: steps due at once after a raise,
    and any other due step) in one transaction; return how many ran. Each alarm is locked and
    stepped as by `run_due_step`; the first delivery of each step is sent here once all have
    committed."""
    due = _lock_due(Alarm.objects if alarms is None else alarms)
    locked = []
    with board.batched(), one_version():
        try:
            with instruments.together(), transaction.atomic(), written_together():
                with targets.created_together():
                    locked = list(due.order_by("next_escalation_at")[:limit])
                    firsts = [_step(alarm, via, send_first=True) for alarm in locked]
                update_many(locked, STEP_FIELDS)
        except Exception:  # noqa: BLE001 (one alarm's fault must not hold the others back)
            log.exception("a batch of due steps failed; running them one by one")
            return sum(_run_alone(alarm.pk) for alarm in locked)
        sending.send_taken([first for first in firsts if first])
    return len(locked)


def _run_alone(alarm_id) -> bool:
    try:
        return run_due_step(alarm_id, send_first=True)
    except Exception:  # noqa: BLE001 (logged; the sweeper tries it again)
        log.exception("the step of alarm %s failed", alarm_id)
        return False


def drain(seconds: float = 5.0) -> int:
    """Run due steps in batches until none is left, for at most `seconds`; then leave the rest
    to a drain queued anew, so that deliveries waiting in the queue get their turn."""
    started, ran = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        batch = run_due_now()
        ran += batch
        if batch < DRAIN_BATCH:
            return ran
    ask_for_drain()
    return ran


def ask_for_drain() -> bool:
    """Queue a drain unless one waits in the queue already; return whether one is queued."""
    return enqueue_once(DRAIN_TASK, DRAIN_PENDING, ttl=DRAIN_PENDING_SECONDS)


def _step(alarm: Alarm, via: str, send_first: bool):
    """Inside the transaction that locked the due alarm: run its step (the caller writes the
    alarm's STEP_FIELDS); return its first delivery, taken, when `send_first`."""
    with logs.about_alarm(alarm.pk):
        instruments.escalation_step_ran(alarm.next_escalation_at, via)
        pending, entries, first = _advance(alarm, send_first)
        record_all(*entries)
        log.info("%s", "; ".join(entry.text for entry in entries))
        schedule(alarm)
        board.publish(alarm)
        if send_first and first is None and pending and sending.takes_in_step(pending[0]):
            first = sending.take(pending.pop(0))  # not written taken: an ordered channel
        queueing.enqueue_rows_on_commit(pending)
    return first


def _due_alarm(alarm_id, token) -> Alarm | None:
    """The alarm, locked, if it is still triggered, carries `token` (when given) and its next
    step is due."""
    alarm = next(iter(_lock_due(Alarm.objects.filter(pk=alarm_id))), None)
    if alarm is None:
        return None
    if token is not None and str(alarm.escalation_token) != str(token):
        return None
    return alarm


def _lock_due(alarms):
    """Of these alarms, the triggered ones whose next step is due, locked (those another
    transaction holds are left to it)."""
    return (
        alarms.select_for_update(skip_locked=True, of=("self",), no_key=True)
        .select_related("site", "room", "person", "device")
        .filter(status=Status.TRIGGERED, next_escalation_at__lte=timezone.now() + EARLY_TOLERANCE)
    )


def _advance(alarm: Alarm, take_first: bool = False) -> tuple[list, list, object]:
    """Run the next step; a step that reaches nobody is skipped and the one after runs now
    (a new round still waits the policy's pause). Return the deliveries to queue, the
    timeline entries to record and, with `take_first`, the first delivery if it was written
    taken (`targets.create_for_step`)."""
    pending, entries, first = [], [], None
    while (position := _next_position(alarm)) is not None:
        index, round_ = position
        alarm.current_step, alarm.current_round = index, round_
        step = alarm.steps_snapshot[index]
        label = f"Step {index + 1} of {len(alarm.steps_snapshot)}, round {round_ + 1}"
        if step.get("policy"):
            label += f" ({step['policy']})"
        step, notes = _on_call_now(step)
        entries += [event(alarm, kind, f"{label}: {text}", step=index) for kind, text in notes]
        notified, taken, unreachable = targets.create_for_step(
            alarm, step, index, round_, take_first=take_first and first is None
        )
        entries += [event(alarm, AlarmEvent.Kind.UNREACHABLE, f"{label}: {text}", step=index)
                    for text in unreachable]  # fmt: skip
        first = first or taken
        pending += [row for row in notified if row.status == row.Status.PENDING]
        if notified:
            text = f"{label}: notifying {', '.join(map(targets.planned, notified))}"
            entries.append(
                event(alarm, AlarmEvent.Kind.STEP_NOTIFIED, text, step=index, round=round_)
            )
        else:
            text = f"{label}: nobody to notify"
            entries.append(event(alarm, AlarmEvent.Kind.STEP_SKIPPED, text, step=index))
        following = _next_position(alarm)
        if following is None:
            break
        if following[1] != round_:
            _schedule(alarm, alarm.repeat_after_seconds)
            return pending, entries, first
        upcoming = alarm.steps_snapshot[following[0]]
        # Delays count from the previous step; a step that reached nobody is not waited out,
        # but a parallel policy's step keeps its own time.
        if notified or upcoming.get("policy") != step.get("policy"):
            _schedule(alarm, upcoming["delay_seconds"])
            return pending, entries, first
    stop(alarm)
    text = "Last step ran; the alarm stays open"
    entries.append(event(alarm, AlarmEvent.Kind.ESCALATION_ENDED, text))
    return pending, entries, first


def _on_call_now(step: dict) -> tuple[dict, list]:
    """The step with whoever its schedules and rotations have on call now added to its
    people (and a gap's fallback channels to its channels), and what to tell the timeline."""
    if not step.get("schedule_ids") and not step.get("rotation_ids"):
        return step, []
    resolved = on_call.resolve(step, timezone.now())
    step = {
        **step,
        "person_ids": sorted(set(step["person_ids"]) | resolved.person_ids),
        "channel_ids": sorted(set(step["channel_ids"]) | resolved.channel_ids),
    }
    return step, resolved.notes


def sweep(limit: int = 500) -> int:
    """Run every overdue step (the safety net under lost or never-sent tasks), but not one
    whose task is waiting in the queue."""
    now = timezone.now()
    due = Alarm.objects.filter(status=Status.TRIGGERED, next_escalation_at__lte=now)
    due = due.filter(unleased("step_queued_until", now))
    ids = due.order_by("next_escalation_at").values_list("pk", flat=True)[:limit]
    ran = sum(run_due_step(alarm_id) for alarm_id in ids)
    if Alarm.objects.filter(status=Status.TRIGGERED, next_escalation_at__lte=now).exists():
        ask_for_drain()  # for steps left to a drain, in case the one they wait for was lost
    return ran


def forget_queued() -> None:
    """The queue was lost: no step's task is waiting any more."""
    release(Alarm.objects.all(), "step_queued_until")
