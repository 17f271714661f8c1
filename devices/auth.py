"""API authentication by device token: `Authorization: Bearer <token>`."""

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from .models import Device


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    """Sets request.auth to the Device; request.user stays anonymous."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <token>'.")
        device = Device.by_token(header[1].decode(errors="replace"))
        if device is None or not device.enabled:
            raise exceptions.AuthenticationFailed("Unknown or disabled token.")
        return AnonymousUser(), device

    def authenticate_header(self, request):
        return self.keyword
