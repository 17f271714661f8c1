"""Mail-only devices (UPS units, NAS boxes, fire and building management panels) as a source.
An email integration has an address, <local part>@<one of MAIL_IN_DOMAINS>. A mail to it is
stored as it arrived (InboundMail) before the sender is told it was taken, then read into an
alarm once: the subject is the title and, through its key, says which alarm; a subject the
integration's resolved pattern matches resolves that alarm instead. A mail that reads badly
still raises one, with what could be read. The SMTP listener (alarms/ingest/mail_in.py) calls
these and says their refusals in SMTP's words."""

import logging
import re
from datetime import timedelta

import regex
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from core import mail_reading
from core.storable_text import made_storable, storable
from devices.models import Device

from .. import lifecycle
from ..models import InboundAddress, InboundMail
from ..timeline import note_made_storable
from . import devices
from .refusal import Refused

log = logging.getLogger(__name__)

SOURCE = "email"
MAX_MESSAGE = 10000  # characters of the body kept in the alarm's message (the mail has all)
# The database connection is gone: the mail waits (or the sender retries), nothing else does.
CONNECTION_ERRORS = (OperationalError, InterfaceError)
# A mail the listener stored but did not read this long after is read by the sweep.
SWEEP_AFTER_SECONDS = 30.0
# How long an operator's pattern (or the default) may take on one subject: past it, it counts as
# no match. The regex package stops it then and lets the listener's other threads run meanwhile
# (re would hold the GIL until it ended, which a backtracking pattern can put off for minutes).
PATTERN_SECONDS = 0.5

# Words that say the state rather than the thing: left out of the default key, so "ALARM:
# Zone 4" and "Zone 4 OK" are one alarm.
STATE_WORDS = re.compile(
    r"\b(?:alarms?|alerts?|problems?|trouble|faults?|failures?|failed|fail|warnings?|critical"
    r"|errors?|down|degraded|activated|triggered|firing|recovery|event|notification)\b",
    re.IGNORECASE,
)
# What changes from one mail about the same thing to the next: dates, times, codes, measured
# values. Short plain numbers (disk 2, zone 14) stay: they say which thing.
VOLATILE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?"
    r"|\b(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\b"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b(?:,?\s+\d{4})?"
    r"|\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b"
    r"|\d+(?:[.,]\d+)?\s*(?:%|°\s*[cf]?|[kmg]?(?:b|v|va|w|hz)\b|(?:ms|s|sec|min|h)\b)"
    r"|\d+[.,]\d+|\d{5,}",
    re.IGNORECASE,
)


def recipient(address: str, ip: str | None) -> InboundAddress:
    """The inbound address a RCPT TO names, its device admitted (seen, its rate limit counted).
    Refused: 403 for a domain we take no mail for (no relaying) or a sender outside the
    device's networks, 404 for no such address or a disabled integration, 429 over its limit."""
    local, _, domain = address.rpartition("@")
    if not local or domain.lower() not in settings.MAIL_IN_DOMAINS:
        raise Refused(403, "relaying denied")
    inbox = InboundAddress.objects.select_related("device").filter(local_part=local.lower()).first()
    if inbox is None or not inbox.device.enabled or inbox.device.kind != Device.Kind.EMAIL:
        raise Refused(404, "no such mailbox here")
    if refusal := inbox.device.refusal(ip):
        raise Refused(403, refusal)
    if devices.over_limit(inbox.device):
        raise Refused(429, "too many mails from this device")
    return inbox


def receive(inboxes: list, recipients: list, envelope_from: str, ip: str | None, raw: bytes):
    """Store the mail once for each of its addresses, committed (the sender may then be told
    it was taken: raises only before that), then read each into its alarm; what cannot be read
    now (the database went away meanwhile) is left to the sweep."""
    with transaction.atomic():
        mails = [
            InboundMail.objects.create(
                address=inbox,
                recipient=storable(to)[:320],
                envelope_from=storable(envelope_from or "")[:320],
                peer=ip,
                raw=raw,
            )
            for inbox, to in zip(inboxes, recipients, strict=True)
        ]
    for mail in mails:
        try:
            process(mail.pk)
        except Exception:  # noqa: BLE001 (it is stored: the sweep reads it later)
            log.warning("mail %s stored, not read yet: left to the sweep", mail.pk, exc_info=True)
    return mails


def unprocessed(older_than: float = 0.0):
    """Mails not read yet, oldest first, received at least `older_than` seconds ago."""
    since = timezone.now() - timedelta(seconds=older_than)
    return InboundMail.objects.filter(processed_at=None, received_at__lte=since).order_by(
        "received_at", "id"
    )


def sweep(limit: int = 200) -> int:
    """Read the mails the listener stored but could not read (it died, the database went
    away); return how many it read."""
    ids = list(unprocessed(SWEEP_AFTER_SECONDS).values_list("pk", flat=True)[:limit])
    return sum(process(pk) is not None for pk in ids)


def process(mail_id: int) -> InboundMail | None:
    """Read a stored mail into its alarm, once, in one transaction with the mark that it was
    read: None when it was read already (or another process is reading it)."""
    with transaction.atomic():
        mail = (
            InboundMail.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=mail_id, processed_at=None)
            .select_related("address__device")
            .first()
        )
        if mail is None:
            return None
        try:
            with transaction.atomic():
                mail.alarm, outcome = apply(mail)
        except CONNECTION_ERRORS:
            raise
        except Exception:  # noqa: BLE001 (a mail no rule foresaw still raises an alarm)
            log.exception("mail %s could not be read into an alarm", mail.pk)
            mail.alarm, outcome = unreadable(mail)
        mail.outcome, mail.processed_at = outcome[:300], timezone.now()
        mail.save(update_fields=["alarm", "outcome", "processed_at"])
    log.info("mail %s to %s: %s", mail.pk, mail.recipient, mail.outcome)
    return mail


def apply(mail: InboundMail) -> tuple:
    """What the mail does (raise, repeat, resolve): the alarm it concerns and what came of it."""
    inbox = mail.address
    if inbox is None:
        return None, "not read: its address was removed"
    reading = mail_reading.read(bytes(mail.raw))
    by = devices.integration_actor(inbox.device, mail.peer)
    fields, changed = made_storable(alarm_fields(mail, reading))
    problems: list[str] = []  # patterns that took too long
    resolves = timed(
        "resolved", regex.search, inbox.resolved_pattern, fields["title"], problems=problems
    )
    key = devices.scoped_dedup_key(
        inbox.device, f"email:{subject_key(inbox, fields['title'], problems)}"
    )
    if resolves:
        text = "; ".join([f"Resolved by mail: {fields['title']}", *problems])
        outcome = lifecycle.clear(key, by, text)
        if outcome is None:
            return None, "resolved nothing: no open alarm with its key"
        return outcome.alarm, "resolved" if outcome.changed else "was resolved already"
    if problems:
        fields["details"]["problems"] = [*fields["details"].get("problems", []), *problems]
    outcome = lifecycle.raise_alarm(
        source=SOURCE, dedup_key=key, severity=inbox.severity, device=inbox.device,
        actor=by, labels={"device": inbox.device.name}, **fields,
    )  # fmt: skip
    note_made_storable(outcome, changed, by)
    if outcome.created or outcome.reopened:
        return outcome.alarm, "raised" if outcome.created else "reopened"
    return outcome.alarm, f"occurrence {outcome.alarm.occurrences}"


def alarm_fields(mail: InboundMail, reading: mail_reading.Reading) -> dict:
    """Title, message and details as the mail gives them (not yet made storable)."""
    sender = reading.sender or mail.envelope_from or "an unknown sender"
    text = reading.text
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "\n[… cut; the whole mail is kept]"
    details = {
        "from": reading.sender, "date": reading.date, "message_id": reading.message_id,
        "to": mail.recipient, "envelope_from": mail.envelope_from, "mail": mail.pk,
        "body": "HTML, as text" if reading.html_only else "",
        "attachments": reading.attachments, "problems": reading.problems,
    }  # fmt: skip
    return {
        "title": reading.subject[:255] or f"Mail from {sender}"[:255],
        "message": text,
        "details": {name: value for name, value in details.items() if value},
    }


def subject_key(inbox: InboundAddress, subject: str, problems: list | None = None) -> str:
    """Which alarm a subject is about: the key pattern's first group (or its match); else the
    subject without its resolved marker, its state words and what changes between mails.
    Patterns that took too long are added to `problems`."""
    problems = [] if problems is None else problems
    found = None
    if inbox.key_pattern:
        found = timed("key", regex.search, inbox.key_pattern, subject, problems=problems)
    if found:
        key = (found.group(1) if found.re.groups else found.group(0)) or ""
    else:
        key = VOLATILE.sub(" ", subject)
        key = timed(
            "resolved", regex.sub, inbox.resolved_pattern, " ", key, problems=problems, nothing=key
        )
        key = STATE_WORDS.sub(" ", key)
    return " ".join(re.sub(r"[\W_]+", " ", key).lower().split())[:200]


def timed(what: str, match, pattern: str, *args, problems: list, nothing=None):
    """match(pattern, *args), i.e. regex.search or regex.sub, given PATTERN_SECONDS: the `what`
    pattern taking longer matches nothing (`nothing` is returned), said in `problems` and the
    log."""
    try:
        return match(pattern, *args, timeout=PATTERN_SECONDS)
    except TimeoutError:
        log.warning("the %s pattern %r took over %s s: taken as no match", what, pattern,
                    PATTERN_SECONDS)  # fmt: skip
        said = f"the {what} pattern took over {PATTERN_SECONDS} s on the subject: taken as no match"
        if said not in problems:
            problems.append(said)
        return nothing


def unreadable(mail: InboundMail) -> tuple:
    """The alarm of a mail that could not be read into one: it says where the mail is kept."""
    inbox = mail.address
    outcome = lifecycle.raise_alarm(
        source=SOURCE,
        dedup_key=devices.scoped_dedup_key(inbox.device, "email:unreadable"),
        title=f"A mail to {mail.recipient} could not be read"[:255],
        message=f"It is kept as inbound mail {mail.pk} (admin: Inbound mails).",
        severity=inbox.severity,
        labels={"device": inbox.device.name},
        details={"mail": mail.pk, "to": mail.recipient},
        device=inbox.device,
        actor=devices.integration_actor(inbox.device, mail.peer),
    )
    return outcome.alarm, "raised as unreadable (see the log)"
