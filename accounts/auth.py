"""API authentication by `Authorization: Bearer <token>`: a device's token (request.auth is the
Device, the user anonymous) or a user's API token (acts as that user, with their roles)."""

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions

from core import client_address, rate_limits
from devices.auth import device_for
from devices.models import SEEN_RESOLUTION

from .models import ApiToken


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <token>'.")
        token = header[1].decode(errors="replace")
        device, refusal = device_for(token, client_address.of_request(request))
        if refusal:
            raise exceptions.PermissionDenied(refusal)
        if device is not None:
            return AnonymousUser(), device
        api_token = ApiToken.by_token(token)
        if api_token is None or not api_token.user.is_active:
            raise exceptions.AuthenticationFailed("Unknown, revoked or disabled token.")
        used(api_token)
        return api_token.user, api_token

    def authenticate_header(self, request):
        return self.keyword


def used(api_token: ApiToken) -> None:
    """Note the use (to within SEEN_RESOLUTION) and count it against the token's limit."""
    now = timezone.now()
    if api_token.last_used_at is None or now - api_token.last_used_at >= SEEN_RESOLUTION:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
    if not rate_limits.allow(f"api-token:{api_token.pk}", settings.API_TOKEN_RATE_PER_MINUTE):
        raise exceptions.Throttled(60, "Rate limit exceeded for this API token.")
