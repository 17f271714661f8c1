"""Who may use the alarm API: a device whose kind the view takes, or a user holding the
permission the view names for the action (see accounts/roles.py)."""

from rest_framework.permissions import BasePermission

from devices.models import Device

from ..sources import devices


def permission_for(view) -> str | None:
    """The permission a user needs here: the view's `user_permission`, per action for a viewset
    (None: users may not call it at all)."""
    needed = getattr(view, "user_permission", None)
    if isinstance(needed, dict):
        return needed.get(getattr(view, "action", None))
    return needed


def wrong_device(device: Device, view) -> str:
    """Why this device's token does not open this view ('' when it does): the device kind the
    view names (`device_kind`), else any but an integration's (alarms/sources/devices.py); a
    viewset naming `device_actions` takes devices for those actions only."""
    return devices.wrong_kind(device, getattr(view, "device_kind", None)) or refused_action(view)


def refused_action(view) -> str:
    """A device raises its alarms and clears its own; acknowledging ("someone is on it") and
    cancelling ("raised in error") are a person's word, which a leaked token must not give."""
    allowed, action = getattr(view, "device_actions", None), getattr(view, "action", None)
    if allowed is None or action in allowed:
        return ""
    return (
        f"A device token may not {action} alarms: that is for people (a login, or a user's API "
        "token). A device raises its alarms and clears (resolves) its own."
    )


class DeviceOrPermittedUser(BasePermission):
    message = "A device token, or a login or API token whose role allows this, is required."

    def has_permission(self, request, view):
        if isinstance(request.auth, Device):
            if refusal := wrong_device(request.auth, view):
                self.message = refusal
                return False
            return True
        user, needed = request.user, permission_for(view)
        return bool(needed and user and user.is_active and user.has_perm(needed))
