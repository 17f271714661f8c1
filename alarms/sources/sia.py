"""Alarm panels over SIA DC-09 (what intrusion and fire panels send to an alarm receiving
centre): SIA DCS and Contact ID (ADM-CID) events, plain or AES-encrypted with the panel's key,
and NULL supervision messages. Each panel is a Device of kind `sia` with its account number;
its zones map to rooms. An event raises, repeats (an occurrence), or clears by its code's
meaning (sia_codes); every message is supervision, so a panel that falls silent raises
"Panel offline" through the heartbeat check.

`answer` is the whole receiver for one message: parse (pysiaalarm reads the formats and
decrypts), check (CRC, length, account, key, the timestamp window), store, then the answer the
standard requires. An ACK leaves only once what the message reports is committed; anything
else is a NAK (the panel sends again) or a DUH (an event this receiver cannot read). The
answers are framed here, not by the parser, whose own answers put a NAK's line before its
receiver and leave out the `|` after an encrypted answer's padding."""

import logging
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.db import DatabaseError
from django.db.models import Prefetch
from pysiaalarm import SIAAccount, SIAEvent
from pysiaalarm.event import OHEvent
from pysiaalarm.utils import MessageTypes

from core.config_cache import kept
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
ZONE_DIGITS = re.compile(r"\d+")


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


def answer(data: bytes, ip: str | None) -> bytes:
    """The answer to one message (its bytes between LF and CR, or a whole datagram): an ACK
    once what it reports is stored, else a NAK or a DUH."""
    known = panels()
    try:
        event, panel = checked(data, known)
    except Unacceptable as exc:
        log.warning("DC-09 message from %s refused (NAK): %s", ip or "?", exc)
        return nak()
    if event is None:
        return nak()
    if event.sia_code is None and event.code not in operators_codes():
        log.warning(
            "DC-09 event code %r from account %s not known (DUH)", event.code, event.account
        )
        return duh(event)
    found = sia_codes.meaning(event.code, operators_codes(), described(event))
    device = panel.device
    if refusal := device.refusal(ip, None):
        log.warning("DC-09 message for %s refused (NAK): %s", device.name, refusal)
        return nak()
    try:
        if devices.over_limit(device):
            log.warning("DC-09 panel %s over its rate limit (NAK)", device.name)
            return nak()
        store(panel, event, found, Actor(f"panel {device.name}", ip=ip))
    except DatabaseError:
        log.exception("DC-09 event from %s not stored (NAK: the panel sends it again)", device.name)
        return nak()
    return ack(event, panel)


def checked(data: bytes, known: dict[str, Panel]) -> tuple[SIAEvent | None, Panel | None]:
    """The parsed message and its panel, once every check the standard asks for has passed."""
    line = data.decode("ascii", "replace").strip()  # a byte that is not ASCII fails the CRC
    accounts = {number: panel.account for number, panel in known.items()}
    try:
        event = SIAEvent.from_line(line, accounts)
    except Exception as exc:  # hostile bytes may trip the parser anywhere: one NAK, no crash
        raise Unacceptable(f"unreadable ({exc.__class__.__name__}: {str(exc)[:200]!r})") from None
    if isinstance(event, OHEvent):
        return None, None
    if not event.valid_message:
        raise Unacceptable(f"CRC {event.msg_crc} does not match {event.calc_crc}")
    if int(event.length, 16) != len(event.full_message):  # (the parser's own check misreads it)
        raise Unacceptable(f"length {event.length} does not match the message")
    panel = known.get((event.account or "").upper())
    if panel is None:
        raise Unacceptable(f"no enabled panel has account {event.account!r}")
    if panel.account.encrypted and not event.encrypted:
        raise Unacceptable(f"account {event.account} sends encrypted; this message was not")
    if event.encrypted and not isinstance(event.timestamp, datetime):
        raise Unacceptable("an encrypted message must carry its timestamp")
    if not event.valid_timestamp:
        raise Unacceptable(f"timestamp {event.timestamp} is outside the window")
    return event, panel


def described(event: SIAEvent) -> str:
    return event.sia_code.type if event.sia_code else ""


def zone_of(event: SIAEvent) -> str:
    """The zone (point, or user) an event concerns: Contact ID's three digits, or the digits
    after a SIA code ("BA12"); '' when it names none."""
    if event.message_type == MessageTypes.ADMCID:
        return normal_zone(event.ri) if event.ri else ""
    found = ZONE_DIGITS.match(event.message or "")
    return normal_zone(found.group()) if found else ""


def partition_of(event: SIAEvent) -> str:
    part = event.partition if event.message_type == MessageTypes.ADMCID else event.ri
    return normal_zone(part) if part else ""


def store(panel: Panel, event: SIAEvent, meaning: Meaning, by: Actor) -> None:
    """What the event says, committed: an alarm raised or repeated, or cleared; nothing for
    supervision (the panel was marked seen) and everyday events."""
    device, zone = panel.device, zone_of(event)
    key = f"device:{device.pk}:sia:{meaning.condition}:{zone or '-'}"
    if meaning.action in (SUPERVISION, IGNORE):
        log.info("DC-09 %s from %s: %s", event.code, device.name, meaning.title or meaning.action)
        return
    if meaning.action == CLEAR:
        lifecycle.clear(
            key, by, f"{meaning.title or event.code} ({event.code}, zone {zone or '-'})"
        )
        return
    assert meaning.action == RAISE
    mapped = panel.zones.get(zone)
    room = mapped.room if mapped else device.room
    where = ", ".join(part for part in (mapped and mapped.name, room and room.name) if part)
    title = meaning.title or f"Panel event {event.code}"
    lifecycle.raise_alarm(
        source="sia",
        dedup_key=key,
        title=f"{title}: {where or (f'zone {zone}' if zone else device.name)}",
        message=message_of(event, device, zone),
        severity=meaning.severity,
        labels=labels_of(event, device, zone),
        details={"sia": details_of(event, zone)},
        device=device,
        room=room,
        actor=by,
    )


def message_of(event: SIAEvent, device: Device, zone: str) -> str:
    said = event.sia_code.description if event.sia_code else f"Event code {event.code}"
    return f"{said}. Panel {device.name}, account {event.account}, zone {zone or 'none'}."


def labels_of(event: SIAEvent, device: Device, zone: str) -> dict:
    labels = {"panel": device.name, "account": event.account, "code": event.code,
              "protocol": event.message_type.value}  # fmt: skip
    if zone:
        labels["zone"] = zone
    if partition := partition_of(event):
        labels["partition"] = partition
    return labels


def details_of(event: SIAEvent, zone: str) -> dict:
    details = {
        "code": event.code, "type": described(event), "zone": zone,
        "partition": partition_of(event), "receiver": event.receiver or "",
        "line": event.line or "", "sequence": event.sequence, "encrypted": bool(event.encrypted),
        "message_type": event.message_type.value, "text": (event.message or "").strip(),
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


def routing(event: SIAEvent) -> str:
    """The sequence, receiver, line and account of the message, echoed in its answer."""
    return f"{event.sequence}{event.receiver or ''}{event.line or ''}#{event.account}"


def ack(event: SIAEvent, panel: Panel) -> bytes:
    if not event.encrypted:
        return frame(f'"ACK"{routing(event)}[]')
    return frame(f'"*ACK"{routing(event)}[{encrypted(panel.account.key_b, "]" + timestamp())}')


def duh(event: SIAEvent) -> bytes:
    return frame(f'"DUH"{routing(event)}[]')


def nak() -> bytes:
    """ "Not accepted; here is my time" (a panel whose clock drifted sets it from this)."""
    return frame(f'"NAK"0000R0L0A0[]{timestamp()}')


def encrypted(key: bytes, text: str) -> str:
    """AES-CBC with a zero IV over random padding, a `|`, and the text, in hex (DC-09)."""
    size = 16 - (len(text) + 1) % 16
    plain = "".join(secrets.choice(PAD_CHARACTERS) for _ in range(size)) + "|" + text
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return (encryptor.update(plain.encode("ascii")) + encryptor.finalize()).hex().upper()
