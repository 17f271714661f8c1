"""Who may use the alarm API: a device whose kind the view takes, or a user holding the
permission the view names for the action (see accounts/roles.py)."""

from rest_framework.permissions import BasePermission

from devices.models import Device


def permission_for(view) -> str | None:
    """The permission a user needs here: the view's `user_permission`, per action for a viewset
    (None: users may not call it at all)."""
    needed = getattr(view, "user_permission", None)
    if isinstance(needed, dict):
        return needed.get(getattr(view, "action", None))
    return needed


def wrong_device(device: Device, view) -> str:
    """Why this device's token does not open this view ('' when it does). A view naming a
    `device_kind` takes that kind only (its `device_refused` says so); any other view takes
    every device but the integrations, whose tokens open only their own endpoint. A viewset
    naming `device_actions` takes devices for those actions only."""
    wanted = getattr(view, "device_kind", None)
    if wanted:
        return "" if device.kind == wanted else view.device_refused
    if device.kind in Device.INTEGRATIONS:
        return f"this is a {device.get_kind_display()} token; use its own endpoint"
    return refused_action(view)


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
