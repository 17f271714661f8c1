"""Shift notices: a reminder to each person before their shift starts (each schedule's lead
time), and a hand-off message as it starts, listing the team's alarms still open. Each goes
to the person's first contact point that can reach them (email, then SMS, then Signal). A row
per person, shift and kind is written before the send, so nobody is told twice, even with
beat on several nodes."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from alarms.models import Alarm, Status
from devices.models import Person
from escalation.models import EscalationPolicy
from oncall.models import Schedule, ShiftNotice
from oncall.plans import plans, segments
from oncall.rota import when
from oncall.who import computed

from ..messages import Message
from ..transports.base import Outgoing, TransportError
from .sending import call_transport, stored, transport_for
from .targets import person_targets

log = logging.getLogger(__name__)

# A hand-off message is still sent this long after the shift started (beat was away).
HANDOFF_LATE = timedelta(minutes=10)
# A failed notice is tried again at the next run, this many times in all.
ATTEMPTS = 3
USUAL_METHODS = ["email", "sms", "signal"]
OPEN = [Status.TRIGGERED, Status.ACKNOWLEDGED]


def send_due(now: datetime | None = None) -> int:
    """Send every reminder and hand-off message due now; return how many were sent."""
    now = now or timezone.now()
    sent = _retry(now)  # first: what failed in an earlier run, not what fails now
    known = plans()
    for schedule in Schedule.objects.filter(Q(reminder_minutes__gt=0) | Q(handoff_message=True)):
        plan = known.get(("schedule", schedule.pk))
        if plan is None:
            continue
        lead = timedelta(minutes=schedule.reminder_minutes)
        for person_id, starts in shift_starts(plan, now - HANDOFF_LATE, now + lead):
            if starts > now and schedule.reminder_minutes:
                kind = ShiftNotice.Kind.REMINDER
            elif starts <= now and schedule.handoff_message:
                kind = ShiftNotice.Kind.HANDOFF
            else:
                continue
            sent += _notify(schedule, plan, person_id, kind, starts, now)
    return sent


def shift_starts(plan, start: datetime, end: datetime):
    """(person id, when their shift starts) for each shift starting in (start, end]:
    someone on call in a stretch who was not in the one before."""
    stretches = segments(plan, start, end + timedelta(seconds=1))
    for before, after in zip(stretches, stretches[1:], strict=False):
        arriving = {c.person_id for c in after.people} - {c.person_id for c in before.people}
        for person_id in arriving:
            yield person_id, after.starts_at


def _notify(schedule, plan, person_id, kind, starts, now) -> int:
    told = ShiftNotice.objects.filter(schedule=schedule, person_id=person_id, kind=kind,
                                      shift_starts_at=starts)  # fmt: skip
    if told.exists():
        return 0  # every run meets the shifts of the window again
    try:
        with transaction.atomic():
            notice = ShiftNotice.objects.create(schedule=schedule, person_id=person_id, kind=kind,
                                                shift_starts_at=starts)  # fmt: skip
    except IntegrityError:
        return 0  # told already (or being told by another node)
    ends = computed(plan, starts).until.get(person_id)  # when their shift ends, if in sight
    notice.text = _text(schedule, plan, kind, starts, ends, now)
    return _send(notice)


def _retry(now: datetime) -> int:
    """Failed notices whose shift has not started long ago: once more each run."""
    again = ShiftNotice.objects.filter(status=ShiftNotice.Status.FAILED, attempts__lt=ATTEMPTS,
                                       shift_starts_at__gt=now - HANDOFF_LATE)  # fmt: skip
    sent = 0
    for notice_id in again.values_list("pk", flat=True):
        with transaction.atomic():
            notice = ShiftNotice.objects.select_for_update(skip_locked=True).filter(
                pk=notice_id, status=ShiftNotice.Status.FAILED).first()  # fmt: skip
            if notice is None:
                continue
            notice.status = ShiftNotice.Status.SENDING
            notice.save(update_fields=["status"])
        sent += _send(notice)
    return sent


def _send(notice: ShiftNotice) -> int:
    person = Person.objects.get(pk=notice.person_id)
    target = next((t for t in person_targets(person, USUAL_METHODS, {}) if t[2]), None)
    notice.attempts += 1
    if target is None:
        notice.status, notice.answer = ShiftNotice.Status.FAILED, "no contact point reaches them"
        notice.attempts = ATTEMPTS  # nothing to try again
        notice.save()
        return 0
    method, gateway, address = target
    subject, _, text = notice.text.partition("\n\n")
    transport = transport_for(gateway)
    notice.method, notice.address = method, address
    out = Outgoing(
        None, "notice", Message(subject, text), address, person, key=f"notice-{notice.pk}"
    )
    try:
        sent = call_transport(transport, out, method)
    except TransportError as exc:
        notice.status, notice.answer = ShiftNotice.Status.FAILED, stored(transport, exc.message)
        if exc.permanent:
            notice.attempts = ATTEMPTS
        notice.save()
        log.warning("shift notice %s to %s failed: %s", notice.pk, method, notice.answer)
        return 0
    notice.status, notice.sent_at = ShiftNotice.Status.SENT, timezone.now()
    notice.answer = stored(transport, " ".join(filter(None, [sent.status, sent.message_id])))
    notice.save()
    return 1


def _text(schedule, plan, kind, starts, ends, now) -> str:
    """Subject, a blank line, then the body."""
    tz = plan.tz
    span = f"{starts.astimezone(tz):%a %d %b %H:%M}"
    span += f" until {when(ends, starts, tz)}" if ends else ""
    if kind == ShiftNotice.Kind.REMINDER:
        return (f"Your on-call shift in {schedule.name} starts at {when(starts, now, tz)}\n\n"
                f"You are on call in {schedule.name} from {span} ({tz.key}).")  # fmt: skip
    alarms = list(open_alarms(schedule))
    lines = [f"- [{a.severity}] {a.title} ({a.status} since "
             f"{a.created_at.astimezone(tz):%a %H:%M}{', ' + a.site.name if a.site else ''})"
             for a in alarms[:20]]  # fmt: skip
    if len(alarms) > 20:
        lines.append(f"… and {len(alarms) - 20} more")
    board = settings.PUBLIC_BASE_URL + reverse("board")
    listed = "\n".join(lines) if lines else "No alarms of your team are open."
    return (f"You are on call in {schedule.name}: {len(alarms)} alarm(s) open\n\n"
            f"Your shift in {schedule.name} started: {span} ({tz.key}).\n\n{listed}\n\n"
            f"The board: {board}")  # fmt: skip


def open_alarms(schedule: Schedule):
    """The open alarms of the schedule's team (their policy is the team's), and of the
    policies that page this schedule."""
    policies = EscalationPolicy.objects.filter(
        Q(steps__schedules=schedule) | Q(team__isnull=False, team=schedule.team_id)
    )  # fmt: skip
    return (Alarm.objects.filter(status__in=OPEN, policy__in=policies, folded_into=None)
            .select_related("site").order_by("created_at"))  # fmt: skip
