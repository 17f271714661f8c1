"""Devices as a source: the checks every device's request passes (its token, its kind, its
rate limit), its heartbeat, and the alarm a phone's emergency key raises (Yealink's Action URL,
a GET with the token in the query string, as the phone can send neither headers nor body)."""

import hashlib

from core import rate_limits
from devices.auth import device_for
from devices.models import Device

from .. import lifecycle
from ..models import Alarm
from ..timeline import Actor
from . import heartbeats
from .refusal import Refused

# The integrations whose tokens open their own endpoint only, and what the others are told.
REQUIRED = {
    Device.Kind.ALERTMANAGER: "an Alertmanager integration token is required",
    Device.Kind.METRICS: "a metrics sender token is required",
    Device.Kind.CAP: "a CAP (public warnings) integration token is required",
}
UNKNOWN = "unknown or disabled device token"
DEDUP_KEY_LENGTH = Alarm._meta.get_field("dedup_key").max_length


def wrong_kind(device: Device, kind: str | None = None) -> str:
    """Why this device's token may not be used here ('' when it may): where a `kind` is wanted,
    only that kind; elsewhere every device but the integrations, whose tokens open only their
    own endpoint (a leaked Alertmanager token cannot press a panic button)."""
    if kind:
        return "" if device.kind == kind else REQUIRED[kind]
    if device.kind in Device.INTEGRATIONS:
        return f"this is a {device.get_kind_display()} token; use its own endpoint"
    return ""


def actor(device: Device, ip: str | None) -> Actor:
    return Actor(f"device {device.name}", ip=ip)


def integration_actor(device: Device, ip: str | None) -> Actor:
    """An integration as the actor of what it changes ("Alertmanager am-prod")."""
    return Actor(f"{device.get_kind_display()} {device.name}", ip=ip)


def scoped_dedup_key(device: Device | None, key: str) -> str:
    """Dedup keys are per device token (as PagerDuty's are per routing key); users share one."""
    return fitted(f"device:{device.pk}:{key}" if device else f"api:{key}")


def fitted(key: str) -> str:
    """The key as the alarm stores it: one too long for its column keeps its start and ends in
    a hash of the whole, so the same key always finds the same alarm."""
    if len(key) <= DEDUP_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{key[: DEDUP_KEY_LENGTH - 33]}#{digest}"


def over_limit(device: Device) -> bool:
    """Mark the device seen (resolving its offline alarm if it had gone quiet) and count its
    request: whether it is over its rate limit. Seen either way: a device sending too much is
    alive."""
    seen_before = device.last_seen_at
    device.mark_seen()
    heartbeats.heard(device, seen_before)
    return not rate_limits.allow(f"device:{device.pk}", device.rate_limit_per_minute)


def admit(device: Device) -> None:
    """As over_limit, refusing the request (429) once the device is over its limit."""
    if over_limit(device):
        raise Refused(429, "rate limit exceeded for this device", **{"Retry-After": "60"})


def heartbeat(token: str, ip: str | None) -> Device | None:
    """The device holding this token heard from (None: no enabled device holds it)."""
    device, refusal = device_for(token, ip)
    if device is None:
        return None
    if refusal:
        raise Refused(403, refusal)
    admit(device)
    return device


def press(token: str, ip: str | None, mac: str | None) -> lifecycle.Outcome:
    """A phone's emergency key: its token checked (and its address and MAC where the device
    names them), the device mapped to a room or a person, within its rate limit."""
    device, refusal = device_for(token, ip, mac)
    if device is None:
        raise Refused(404, UNKNOWN)
    if refusal := refusal or wrong_kind(device):
        raise Refused(403, refusal)
    if device.mapping_problem:
        raise Refused(409, device.mapping_problem)
    admit(device)
    return press_emergency_key(device, actor(device, ip))


def press_emergency_key(
    device: Device, by: Actor, *, key="emergency", title_prefix="", message="", labels=None
) -> lifecycle.Outcome:
    """The alarm a phone's emergency key raises (its Action URL, and the go-live test with a
    key, title prefix, message and labels of its own)."""
    return lifecycle.raise_alarm(
        source="yealink",
        dedup_key=f"device:{device.pk}:{key}",
        title=f"{title_prefix}Emergency key pressed: {device.person or device.room}",
        message=message or f"Emergency key on {device.name}.",
        severity="critical",
        labels={"device": device.name, **(labels or {})},
        device=device,
        actor=by,
    )
