"""Who may use the alarm API: a device by its token, or a logged-in staff member."""

from rest_framework.permissions import BasePermission

from devices.models import Device


class IsDeviceOrStaff(BasePermission):
    message = "A device token (Authorization: Bearer …) or a staff login is required."

    def has_permission(self, request, view):
        return isinstance(request.auth, Device) or bool(
            request.user and request.user.is_active and request.user.is_staff
        )
