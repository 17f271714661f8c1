"""Acting on a reply: who sent it, which alarm it names, what it asks; the answer it gets.

Every reply is stored first (`receive`) and handled once (`handle`, under the row's lock), by
the worker as it arrives or by the sweep when the worker was away; what it does goes through
`alarms.lifecycle` as every other acknowledgement does, and onto the alarm's timeline. The
answer goes back through the gateway it came by.
"""

import logging
from datetime import timedelta

import phonenumbers
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from alarms import lifecycle
from alarms.models import Alarm, AlarmEvent, Status
from alarms.timeline import Actor, record
from core import rate_limits
from core.storable_text import storable
from devices.models import Person
from notifications import reply_codes
from notifications.messages import acknowledger, clock

from . import grammar
from .models import Reply

log = logging.getLogger(__name__)

# Where a person's number for each method is kept.
NUMBER_FIELDS = {"sms": "phone", "signal": "signal_number"}
LABELS = {"sms": "SMS", "signal": "Signal"}
# A reply longer than this is cut before it is stored.
MAX_TEXT = 1000


def e164(number: str) -> str:
    """A sender as E.164 ('+4915…'), from what gateways send ('+49 151…', '004915…',
    '4915…'); '' when it is not a phone number."""
    number = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    if number.startswith("00"):
        number = "+" + number[2:]
    elif number and not number.startswith("+"):
        number = "+" + number
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(parsed):
        return ""
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def receive(channel, method: str, sender: str, text: str, provider_id: str = "") -> Reply | None:
    """Store a reply as it arrived; None when this one was stored before (a provider that
    delivers it again). What it does happens in `handle`."""
    try:
        with transaction.atomic():
            return Reply.objects.create(
                channel=channel, method=method, sender=storable(sender)[:64],
                text=storable(text)[:MAX_TEXT], provider_id=storable(provider_id)[:200],
            )  # fmt: skip
    except IntegrityError:
        return None


def unhandled(older_than: float = 0.0):
    """Replies not handled yet, received at least `older_than` seconds ago."""
    since = timezone.now() - timedelta(seconds=older_than)
    return Reply.objects.filter(handled_at=None, received_at__lte=since)


def handle(reply_id: int) -> Reply | None:
    """Act on a stored reply once: None when it was handled already (or another worker holds
    it). Its answer, if any, is left on the row for `answers.send`."""
    with transaction.atomic():
        reply = (
            Reply.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=reply_id, handled_at=None)
            .select_related("channel")
            .first()
        )
        if reply is None:
            return None
        outcome, answer, changed = _act(reply)
        if answer and not changed and not _may_answer(reply):
            answer, outcome = "", f"{outcome} (not answered: too many replies this hour)"
        reply.outcome, reply.answer = outcome[:300], answer
        reply.handled_at = timezone.now()
        reply.save(update_fields=["person", "alarm", "outcome", "answer", "handled_at"])
    log.info("reply from %s: %s", reply.person or "an unknown number", reply.outcome)
    return reply


def _may_answer(reply: Reply) -> bool:
    """A few answers that change nothing per number per hour: a loop with another robot, or
    someone typing at random, does not cost a message each."""
    key = f"reply-answers:{reply.method}:{e164(reply.sender) or reply.sender}"
    return rate_limits.allow(key, settings.REPLY_ANSWERS_PER_HOUR, window_seconds=3600)


def _person(reply: Reply) -> Person | None:
    number = e164(reply.sender)
    if not number:
        return None
    people = Person.objects.filter(active=True, **{NUMBER_FIELDS[reply.method]: number})
    return people.order_by("pk").first()


def _act(reply: Reply) -> tuple[str, str, bool]:
    """(what came of it, the answer, whether it changed anything)."""
    reply.person = person = _person(reply)
    if person is None:
        return "not from a person's number: ignored", "", False
    command = grammar.parse(reply.text)
    if command is None:
        return "not understood", UNKNOWN_REPLY, False
    if command.action in (grammar.OPT_OUT, grammar.OPT_IN):
        return _opt(person, reply, command.action == grammar.OPT_OUT)
    number = getattr(person, NUMBER_FIELDS[reply.method])
    code = _code(number, command)
    if (
        code is None
        and command.code
        and (bundle := reply_codes.bundled_pages(number, command.code))
    ):
        return _carry_out_all(bundle, command, person, reply)
    if code is None:
        if command.code is None:
            return "no open alarm on this phone", "You have no open alarm to answer.", False
        if closed := reply_codes.released_code(number, command.code):
            reply.alarm = closed.alarm
            return "code of a closed alarm", _closed(closed.alarm, closed.number), False
        return f"unknown code {command.code}", f"Unknown code {command.code}.", False
    reply.alarm = code.alarm
    actor = Actor(f"{person.name} by {LABELS[reply.method]} reply {grammar.normalized(reply.text)}",
                  person=person)  # fmt: skip
    record(code.alarm, AlarmEvent.Kind.REPLY, f"{LABELS[reply.method]} reply from {person.name}: "
           f"{grammar.normalized(reply.text)}", actor, reply_id=reply.pk)  # fmt: skip
    return _carry_out(code, command, actor)


def _code(number: str, command: grammar.Command):
    if command.code is None:
        return reply_codes.latest_code(number)
    return reply_codes.open_code(number, command.code)


def _apply(command, alarm_id, actor: Actor, cycle: int) -> lifecycle.Outcome:
    """The command on this alarm, for the cycle its page was about."""
    if command.action == grammar.ACKNOWLEDGE:
        return lifecycle.acknowledge(alarm_id, actor, cycle=cycle)
    if command.action == grammar.CLAIM:
        return lifecycle.claim(alarm_id, actor, command.eta_minutes, cycle=cycle)
    return lifecycle.resolve(alarm_id, actor, cycle=cycle)


def _carry_out(code, command, actor: Actor) -> tuple[str, str, bool]:
    """What the command does to the code's alarm, for the cycle the code was taken in (one
    that closed and fired again since is not acknowledged by an answer to the old page)."""
    alarm, number, cycle = code.alarm, code.number, code.cycle
    about = f"#{number} {alarm.title}" + (f": {alarm.room.name}" if alarm.room else "")
    try:
        outcome = _apply(command, alarm.pk, actor, cycle)
    except lifecycle.AlarmClosed as exc:
        return "already closed", _closed(exc.alarm, number), False
    except lifecycle.BadEta as exc:
        return f"refused: ETA not {exc}", f"Not done: an ETA is {exc}.", False
    if command.action == grammar.ACKNOWLEDGE:
        if not outcome.changed:
            return "already acknowledged", _acknowledged(outcome.alarm, number), False
        return "acknowledged", f"Acknowledged {about}", True
    if command.action == grammar.CLAIM:
        eta = f", ETA {command.eta_minutes} min" if command.eta_minutes else ""
        return "claimed", f"On your way to {about}{eta}. Reply {number}r once resolved.", True
    if not outcome.changed:
        return "already closed", _closed(outcome.alarm, number), False
    return "resolved", f"Resolved {about}", True


def _carry_out_all(pages: list, command, person: Person, reply) -> tuple[str, str, bool]:
    """A bundle's code ("100a"): the command for each alarm it carried, for the cycle its
    page was about, in the alarms' order (two bundles answered at once lock them alike)."""
    said = grammar.normalized(reply.text)
    actor = Actor(f"{person.name} by {LABELS[reply.method]} reply {said}", person=person)
    done = 0
    for page in pages:
        record(page.alarm, AlarmEvent.Kind.REPLY, f"{LABELS[reply.method]} reply from "
               f"{person.name}: {said} (a bundle)", actor, reply_id=reply.pk)  # fmt: skip
        try:
            done += _apply(command, page.alarm_id, actor, page.cycle).changed
        except (lifecycle.AlarmClosed, lifecycle.BadEta):
            continue
    reply.alarm = pages[0].alarm
    verb = {grammar.ACKNOWLEDGE: "Acknowledged", grammar.CLAIM: "On your way to",
            grammar.RESOLVE: "Resolved"}[command.action]  # fmt: skip
    rest = len(pages) - done
    answer = f"{verb} {done} of {len(pages)} alarms" + (
        f"; {rest} {'was' if rest == 1 else 'were'} already taken or closed." if rest else "."
    )
    return f"{command.action} {done} of a bundle of {len(pages)}", answer, done > 0


def _acknowledged(alarm: Alarm, number: int) -> str:
    return f"#{number} was already acknowledged by {acknowledger(alarm)} at " + clock(
        alarm.acknowledged_at
    )


def _closed(alarm: Alarm, number: int) -> str:
    if alarm.status == Status.ACKNOWLEDGED:
        return _acknowledged(alarm, number)
    if alarm.status in (Status.RESOLVED, Status.CANCELLED):
        return f"#{number} was already {alarm.status} by {alarm.resolved_by} at " + clock(
            alarm.resolved_at
        )
    return f"#{number} is open again: it now has a new code."


def _opt(person: Person, reply: Reply, out: bool) -> tuple[str, str, bool]:
    method = reply.method
    field = Person.OPT_OUT_FIELDS[method]
    muted = getattr(person, field) is not None
    if out == muted:
        state = "muted" if muted else "not muted"
        return f"already {state}", "", False
    # Everyone with this number: the phone said so, not one of its people.
    number = {NUMBER_FIELDS[method]: getattr(person, NUMBER_FIELDS[method])}
    Person.objects.filter(**number).update(**{field: timezone.now() if out else None})
    label = LABELS[method]
    if reply.channel and reply.channel.kind == "twilio":
        # Twilio keeps its own opt-out list for STOP and START, and answers them itself.
        return f"{label} {'muted (STOP)' if out else 'unmuted (START)'}", "", True
    if out:
        text = f"You will get no more alarm messages by {label} here. Reply START for them again."
        return f"{label} muted (STOP)", text, True
    return f"{label} unmuted (START)", f"You will get alarm messages by {label} here again.", True


UNKNOWN_REPLY = (
    "Not understood. Reply 1a to acknowledge alarm #1, 1c to claim it (1c 10: there in 10 min), "
    "1r to resolve it."
)
