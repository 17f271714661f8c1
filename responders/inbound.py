"""Where replies come in: which channel a provider's request belongs to, and whether it is
really that provider's (Twilio's request signature; a gateway's token in the URL)."""

import base64
import hashlib
import hmac
from urllib.parse import urlsplit, urlunsplit

from notifications.models import NotificationChannel


def twilio_signature(auth_token: str, url: str, params: dict[str, list[str]]) -> str:
    """X-Twilio-Signature as Twilio computes it: HMAC-SHA1 with the account's auth token over
    the full URL it requested followed by each POST parameter's name and value, sorted by
    name (and a repeated name's values sorted), in base64."""
    data = url + "".join(
        name + value for name in sorted(params) for value in sorted(set(params[name]))
    )
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _with_and_without_port(url: str) -> list[str]:
    """Twilio signs the URL as configured: with the default port written out, or without."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    bare = urlunsplit(parts._replace(netloc=host))
    ported = urlunsplit(parts._replace(netloc=f"{host}:{parts.port or default}"))
    return [url] + [u for u in (bare, ported) if u != url and (parts.port in (None, default))]


def twilio_valid(auth_token: str, urls: list[str], params: dict, signature: str) -> bool:
    candidates = {u for url in urls for u in _with_and_without_port(url)}
    return bool(signature) and any(
        hmac.compare_digest(twilio_signature(auth_token, url, params), signature)
        for url in candidates
    )


def signed_with(request, auth_token: str, urls: list[str]) -> bool:
    """Whether this request carries Twilio's signature made with this auth token."""
    params = {name: request.POST.getlist(name) for name in request.POST}
    signature = request.headers.get("X-Twilio-Signature", "")
    return twilio_valid(auth_token, urls, params, signature)


def twilio_channels(account_sid: str, kinds: tuple[str, ...]) -> list[NotificationChannel]:
    """The enabled Twilio channels of this account (SMS or voice), whose tokens may have signed
    a request."""
    channels = NotificationChannel.objects.filter(kind__in=kinds, enabled=True).order_by("name")
    return [channel for channel in channels if channel.config.get("account_sid") == account_sid]


def signed_by_twilio(
    request, kinds: tuple[str, ...], urls: list[str]
) -> NotificationChannel | None:
    """The channel whose auth token signed this request, or None: a request nobody signed (or
    signed with another account's token) is not Twilio's."""
    channels = twilio_channels(request.POST.get("AccountSid", ""), kinds)
    # The number (or messaging service) the person texted answers them.
    to, service = request.POST.get("To", ""), request.POST.get("MessagingServiceSid", "")

    def texted(channel) -> bool:
        config = channel.config
        return config.get("from") == to or bool(
            service and config.get("messaging_service_sid") == service
        )

    channels.sort(key=lambda channel: not texted(channel))
    for channel in channels:
        if signed_with(request, channel.config.get("auth_token", ""), urls):
            return channel
    return None


def gateway_by_token(token: str) -> NotificationChannel | None:
    """The SMS gateway whose inbound token this is (compared in constant time)."""
    if not token or len(token) > 200:
        return None
    found = None
    for channel in NotificationChannel.objects.filter(kind="sms_http", enabled=True):
        expected = channel.config.get("inbound_token", "")
        if expected and hmac.compare_digest(expected.encode(), token.encode()):
            found = channel
    return found


def field(data, name: str) -> str:
    """A value of a gateway's request, by a dotted name for JSON ("message.from")."""
    for part in name.split("."):
        if not isinstance(data, dict) or part not in data:
            return ""
        data = data[part]
    return str(data) if isinstance(data, (str, int, float)) else ""
