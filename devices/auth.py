"""A device's token checked where it is used: enabled, and allowed from this address (and, for
a Yealink phone, this MAC address)."""

from .models import Device


def device_for(token: str, ip: str | None, mac: str | None = None) -> tuple[Device | None, str]:
    """The enabled device holding this token (None if none), and why it may not be used from
    here ('' when it may)."""
    device = Device.by_token(token)
    if device is None or not device.enabled:
        return None, ""
    return device, device.refusal(ip, mac)
