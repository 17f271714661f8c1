"""Who may use the alarm API: a device by its token (each view then checks the device's kind),
or a user holding the permission the view names for the action (see accounts/roles.py)."""

from rest_framework.permissions import BasePermission

from devices.models import Device


def permission_for(view) -> str | None:
    """The permission a user needs here: the view's `user_permission`, per action for a viewset
    (None: users may not call it at all)."""
    needed = getattr(view, "user_permission", None)
    if isinstance(needed, dict):
        return needed.get(getattr(view, "action", None))
    return needed


class DeviceOrPermittedUser(BasePermission):
    message = "A device token, or a login or API token whose role allows this, is required."

    def has_permission(self, request, view):
        if isinstance(request.auth, Device):
            # Integration tokens open only their own endpoint (`for_integrations` views).
            device = request.auth
            if device.kind in Device.INTEGRATIONS and not getattr(view, "for_integrations", False):
                self.message = f"this is a {device.get_kind_display()} token; use its own endpoint"
                return False
            return True
        user, needed = request.user, permission_for(view)
        return bool(needed and user and user.is_active and user.has_perm(needed))
