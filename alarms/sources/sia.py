"""Alarm panels over SIA DC-09 (what intrusion and fire panels send to an alarm receiving
centre): SIA DCS and Contact ID (ADM-CID) events, plain or AES-encrypted with the panel's key,
and NULL supervision messages. Each panel is a Device of kind `sia` with its account number;
its zones map to rooms. An event raises, repeats (an occurrence), or clears by its code's
meaning (sia_codes); every message is supervision, so a panel that falls silent raises
"Panel offline" through the heartbeat check.

`answer` is the whole receiver for one message: parse (pysiaalarm reads the formats and
decrypts), check (CRC, length, account, key, the timestamp window), store, then the answer the
standard requires. An ACK leaves only once what the message reports is committed; anything
else is a NAK (the panel sends again) or a DUH (a message of a kind not read here). The
answers are framed here, not by the parser, whose own answers put a NAK's line before its
receiver and leave out the `|` after an encrypted answer's padding."""

import logging
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.db import DatabaseError, transaction
from django.db.models import Prefetch
from pysiaalarm import SIAAccount, SIAEvent
from pysiaalarm.utils import SIA_CODES, MessageTypes

from core.config_cache import kept, one_version
from devices.models import Device, PanelEventCode, PanelZone, normal_zone

from .. import lifecycle
from ..timeline import Actor
from . import devices, sia_codes
from .sia_codes import CLEAR, IGNORE, RAISE, SUPERVISION, Meaning

log = logging.getLogger(__name__)

# How far a message's timestamp may lag behind or run ahead of our clock, in seconds
# (DC-09: -40 s / +20 s); outside it, the message may be a replay and is refused.
TIMESTAMP_WINDOW = (40, 20)
# A pad character may be anything printable but the frame's own brackets and bar.
PAD_CHARACTERS = string.ascii_letters + string.digits
# A message's frame up to its data: CRC, 0LLL length, "token", sequence, receiver, line,
# account. Checked here first, so a well-formed message of a kind not read gets its DUH.
HEADER = re.compile(
    r'(?P<crc>[0-9A-Fa-f]{4})0[0-9A-Fa-f]{3}"(?P<token>\*?[A-Za-z0-9-]{1,16})"(?P<sequence>\d{4})'
    r"(?P<receiver>R[0-9A-Fa-f]{1,6})?(?P<line>L[0-9A-Fa-f]{1,6})#?(?P<account>[0-9A-Fa-f]{3,16})?\["
)
READ_TOKENS = ("SIA-DCS", "ADM-CID", "NULL")
# Real messages are a few hundred characters; the parser's cost grows fast with length.
MAX_MESSAGE = 1024
# One block of a SIA DCS message's data: an event code and its zone ("BA12"), or the area the
# events after it concern ("ri2"); others (time, user id) are read past.
BLOCK = re.compile(r"(?P<area>ri\d+)|(?P<code>[A-Z]{2})(?P<zone>\d*)")


@dataclass(frozen=True)
class Panel:
    device: Device
    account: SIAAccount
    zones: dict  # normal zone -> PanelZone (with its room and site)


def panels() -> dict[str, Panel]:
    """The enabled panels by account number, as this process keeps them."""
    return kept("sia panels", _read_panels)


def _read_panels() -> dict[str, Panel]:
    zones = Prefetch("zones", PanelZone.objects.select_related("room__site"))
    rows = Device.objects.filter(
        kind=Device.Kind.SIA_PANEL, enabled=True, sia_account__isnull=False
    )
    found = {}
    for device in rows.select_related("site", "room__site").prefetch_related(zones):
        account = SIAAccount(device.sia_account.upper(), device.sia_key or None,
                             allowed_timeband=TIMESTAMP_WINDOW)  # fmt: skip
        found[account.account_id] = Panel(device, account, {z.zone: z for z in device.zones.all()})
    return found


def operators_codes() -> dict[str, Meaning]:
    return kept("sia codes", _read_codes)


def _read_codes() -> dict[str, Meaning]:
    return {
        row.code: Meaning(row.action, row.condition or row.code, row.severity, row.title)
        for row in PanelEventCode.objects.all()
    }


class Unacceptable(Exception):
    """A message that is NAKed: why, for the log."""


class Unsupported(Exception):
    """A well-formed message of a kind this receiver does not read: answered DUH."""

    def __init__(self, header: dict):
        super().__init__(header["token"])
        self.header = header


def answer(data: bytes, ip: str | None) -> bytes:
    """The answer to one message (its bytes between LF and CR, or a whole datagram): an ACK
    once every event it reports is stored, else a NAK or a DUH. The message sees one
    configuration: its panels, codes, routing and policies for one Redis round trip."""
    with one_version():
        return _answer(data, ip)


def _answer(data: bytes, ip: str | None) -> bytes:
    known = panels()
    try:
        event, panel = checked(data, known)
    except Unsupported as exc:
        log.warning("DC-09 message of a kind not read (DUH): %s", exc.header["token"])
        return duh(exc.header)
    except Unacceptable as exc:
        log.warning("DC-09 message from %s refused (NAK): %s", ip or "?", exc)
        return nak()
    device = panel.device
    if refusal := device.refusal(ip, None):
        log.warning("DC-09 message for %s refused (NAK): %s", device.name, refusal)
        return nak()
    try:
        if devices.over_limit(device):
            log.warning("DC-09 panel %s over its rate limit (NAK)", device.name)
            return nak()
        by = Actor(f"panel {device.name}", ip=ip)
        with transaction.atomic():  # every event of the message, or none
            for one in events_of(event):
                store(panel, event, one, by)
    except DatabaseError:
        log.exception("DC-09 event from %s not stored (NAK: the panel sends it again)", device.name)
        return nak()
    return ack(event, panel)


def looks_like_dc09(data: bytes) -> bool:
    """Whether the bytes start as a DC-09 message does (what a UDP datagram must, to get an
    answer at all)."""
    return HEADER.match(data.decode("ascii", "replace").strip()) is not None


def checked(data: bytes, known: dict[str, Panel]) -> tuple[SIAEvent, Panel]:
    """The parsed message and its panel, once every check the standard asks for has passed."""
    if len(data) > MAX_MESSAGE:
        raise Unacceptable(f"{len(data)} bytes, more than a message has")
    line = data.decode("ascii", "replace").strip()
    if not line.isascii():
        raise Unacceptable("a byte that is not ASCII")
    header = HEADER.match(line)
    if header is None:
        raise Unacceptable(f"not a DC-09 message: {line[:40]!r}")
    if crc(line[8:]) != header["crc"].upper():
        raise Unacceptable(f"CRC {header['crc']} does not match {crc(line[8:])}")
    if header["token"].lstrip("*").upper() not in READ_TOKENS:
        raise Unsupported(header.groupdict())
    spelled = header["account"] or ""
    panel = known.get(spelled.upper())
    if panel is None:
        raise Unacceptable(f"no enabled panel has account {spelled!r}")
    try:  # the account as the panel spells it: the parser looks it up so
        event = SIAEvent.from_line(line, {spelled: panel.account})
    except Exception as exc:  # hostile bytes may trip the parser anywhere: one NAK, no crash
        raise Unacceptable(f"unreadable ({exc.__class__.__name__}: {str(exc)[:200]!r})") from None
    if int(event.length, 16) != len(event.full_message):  # (the parser's own check misreads it)
        raise Unacceptable(f"length {event.length} does not match the message")
    if panel.account.encrypted and not event.encrypted:
        raise Unacceptable(f"account {spelled} sends encrypted; this message was not")
    if event.encrypted and not isinstance(event.timestamp, datetime):
        raise Unacceptable("an encrypted message must carry its timestamp")
    if not event.valid_timestamp:
        raise Unacceptable(f"timestamp {event.timestamp} is outside the window")
    return event, panel


@dataclass(frozen=True)
class Event:
    """One event of a message: a message may carry several ("Nri1/BA12/FA3")."""

    code: str
    zone: str
    area: str


def events_of(event: SIAEvent) -> list[Event]:
    """Each event the message reports: Contact ID's one, every block of a SIA DCS message's
    data, a NULL message's supervision."""
    if event.message_type == MessageTypes.ADMCID:
        zone = normal_zone(event.ri) if event.ri else ""
        return [Event(event.code, zone, normal_zone(event.partition) if event.partition else "")]
    if event.message_type == MessageTypes.NULL or not event.code:
        return [Event("RP", "", "")]
    area, found = normal_zone(event.ri) if event.ri else "", []
    for block in f"{event.code}{event.message or ''}".split("/"):
        matched = BLOCK.match(block.strip())
        if matched and matched["area"]:
            area = normal_zone(matched["area"][2:])
        elif matched:
            zone = normal_zone(matched["zone"]) if matched["zone"] else ""
            found.append(Event(matched["code"], zone, area))
    return found or [Event(event.code, "", area)]


def described(code: str) -> str:
    """What the SIA code list calls this code ('' when it is not on it)."""
    known = SIA_CODES.get(code)
    return known.type if known else ""


def store(panel: Panel, event: SIAEvent, one: Event, by: Actor) -> None:
    """What one event says, committed with the others of its message: an alarm raised or
    repeated, or cleared; nothing for supervision (the panel was marked seen) and everyday
    events."""
    device, zone = panel.device, one.zone
    meaning = sia_codes.meaning(one.code, operators_codes(), described(one.code))
    key = devices.scoped_dedup_key(device, f"sia:{meaning.condition}:{zone or '-'}")
    if meaning.action in (SUPERVISION, IGNORE):
        log.info("DC-09 %s from %s: %s", one.code, device.name, meaning.title or meaning.action)
        return
    if meaning.action == CLEAR:
        lifecycle.clear(key, by, f"{meaning.title or one.code} ({one.code}, zone {zone or '-'})")
        return
    assert meaning.action == RAISE
    mapped = panel.zones.get(zone)
    room = mapped.room if mapped else device.room
    where = ", ".join(part for part in (mapped and mapped.name, room and room.name) if part)
    title = meaning.title or f"Panel event {one.code}"
    lifecycle.raise_alarm(
        source="sia",
        dedup_key=key,
        title=f"{title}: {where or (f'zone {zone}' if zone else device.name)}",
        message=message_of(event, one, device),
        severity=meaning.severity,
        labels=labels_of(event, one, device),
        details={"sia": details_of(event, one)},
        device=device,
        room=room,
        actor=by,
    )


def message_of(event: SIAEvent, one: Event, device: Device) -> str:
    known = SIA_CODES.get(one.code)
    said = known.description if known else f"Event code {one.code}"
    return f"{said}. Panel {device.name}, account {event.account}, zone {one.zone or 'none'}."


def labels_of(event: SIAEvent, one: Event, device: Device) -> dict:
    labels = {"panel": device.name, "account": event.account, "code": one.code,
              "protocol": event.message_type.value}  # fmt: skip
    if one.zone:
        labels["zone"] = one.zone
    if one.area:
        labels["partition"] = one.area
    return labels


def details_of(event: SIAEvent, one: Event) -> dict:
    details = {
        "code": one.code, "type": described(one.code), "zone": one.zone, "partition": one.area,
        "receiver": event.receiver or "", "line": event.line or "", "sequence": event.sequence,
        "encrypted": bool(event.encrypted), "message_type": event.message_type.value,
        "text": (event.message or "").strip(),
        "panel_time": event.timestamp.isoformat() if isinstance(event.timestamp, datetime) else "",
    }  # fmt: skip
    if event.message_type == MessageTypes.ADMCID:
        details["contact_id"] = f"{event.event_qualifier}{event.event_type}"
    return details


# --- answers (DC-09's framing: LF, CRC, 0LLL length, the message, CR) --------------------


def crc(text: str) -> str:
    """CRC-16 (the ARC variant DC-09 uses) of the text, as four hex digits."""
    value = 0
    for byte in text.encode("ascii"):
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
    return f"{value:04X}"


def frame(body: str) -> bytes:
    return f"\n{crc(body)}0{len(body):03X}{body}\r".encode("ascii")


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("_%H:%M:%S,%m-%d-%Y")


def routing(sequence: str, receiver: str | None, line: str | None, account: str | None) -> str:
    """The sequence, receiver, line and account of a message, echoed in its answer."""
    return f"{sequence}{receiver or ''}{line or ''}#{account or ''}"


def ack(event: SIAEvent, panel: Panel) -> bytes:
    echoed = routing(event.sequence, event.receiver, event.line, event.account)
    if not event.encrypted:
        return frame(f'"ACK"{echoed}[]')
    return frame(f'"*ACK"{echoed}[{encrypted(panel.account.key_b, "]" + timestamp())}')


def duh(header: dict) -> bytes:
    echoed = routing(header["sequence"], header["receiver"], header["line"], header["account"])
    return frame(f'"DUH"{echoed}[]')


def nak() -> bytes:
    """ "Not accepted; here is my time" (a panel whose clock drifted sets it from this)."""
    return frame(f'"NAK"0000R0L0A0[]{timestamp()}')


def encrypted(key: bytes, text: str) -> str:
    """AES-CBC with a zero IV over random padding, a `|`, and the text, in hex (DC-09)."""
    size = 16 - (len(text) + 1) % 16
    plain = "".join(secrets.choice(PAD_CHARACTERS) for _ in range(size)) + "|" + text
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return (encryptor.update(plain.encode("ascii")) + encryptor.finalize()).hex().upper()
