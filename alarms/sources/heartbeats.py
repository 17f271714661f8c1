"""Devices that must keep talking. A device with a heartbeat interval that stays silent past it
(no heartbeat, no alarm) gets a "device offline" alarm, routed like any other (source
`heartbeat`); hearing from the device again resolves it. A panic button whose battery died
silently is a safety problem: this makes it visible."""

from datetime import timedelta

from django.utils import timezone

from alarms import lifecycle
from alarms.timeline import SYSTEM, Actor
from devices.models import Device


def offline_key(device: Device) -> str:
    return f"device:{device.pk}:offline"


def heard(device: Device, seen_before) -> None:
    """The device spoke (`seen_before`: when it last had): if it had gone quiet for longer than
    its interval, resolve its offline alarm. Costs nothing for a device that was on time."""
    interval = device.heartbeat_interval_seconds
    if not interval or (
        seen_before and timezone.now() - seen_before <= timedelta(seconds=interval)
    ):
        return
    lifecycle.clear(offline_key(device), Actor(f"device {device.name}"), "Heard from again")


def check(now=None) -> int:
    """Raise an offline alarm for every watched device silent past its interval (beat, often);
    return how many are offline. Repeating it changes nothing while they stay silent."""
    now = now or timezone.now()
    offline = 0
    watched = Device.objects.filter(enabled=True, heartbeat_interval_seconds__isnull=False)
    for device in watched.select_related("site", "room", "person", "default_policy"):
        seen = device.last_seen_at or device.created_at
        if now - seen <= timedelta(seconds=device.heartbeat_interval_seconds):
            continue
        offline += 1
        lifecycle.report(
            source="heartbeat",
            dedup_key=offline_key(device),
            title=f"{'Panel' if device.kind == Device.Kind.SIA_PANEL else 'Device'} offline: "
            f"{device.name}",
            message=f"Nothing heard from {device.name} since {seen:%Y-%m-%d %H:%M:%S %Z} "
            f"(it should report every {device.heartbeat_interval_seconds} s).",
            severity="high",
            labels={"device": device.name, "kind": "offline"},
            device=device,
            actor=SYSTEM,
        )
    return offline
