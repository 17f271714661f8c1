"""Which pages may open a WebSocket here: those of PUBLIC_BASE_URL and CSRF_TRUSTED_ORIGINS,
compared by scheme, host and port. A browser sends the session cookie with a WebSocket that
any page opens (no same-origin rule applies to it), so this is what keeps another site, or
another port of this host, from acting on the board as the signed-in user."""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # scheme, host, port


def origin_of(url: str) -> Origin | None:
    """The origin of a URL or an Origin header, its port filled in; None when it has none."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def allowed_origins() -> list[Origin]:
    """PUBLIC_BASE_URL, the same scheme and port under each name in ALLOWED_HOSTS (this very
    server, reached as localhost instead of 127.0.0.1), and CSRF_TRUSTED_ORIGINS. Read at
    each connection, so a changed setting (a test's) counts at once."""
    public = origin_of(settings.PUBLIC_BASE_URL)
    origins = [origin for origin in map(origin_of, settings.CSRF_TRUSTED_ORIGINS) if origin]
    if public:
        scheme, _, port = public
        names = [host.strip("[]").lower() for host in settings.ALLOWED_HOSTS
                 if host and host[0] not in ".*"]  # fmt: skip
        origins += [public, *((scheme, name, port) for name in names)]
    return origins


def matches(origin: Origin, allowed: Origin) -> bool:
    (scheme, host, port), (allowed_scheme, allowed_host, allowed_port) = origin, allowed
    if (scheme, port) != (allowed_scheme, allowed_port):
        return False
    if allowed_host.startswith("*."):  # CSRF_TRUSTED_ORIGINS' form for any subdomain
        return host.endswith(allowed_host[1:])
    return host == allowed_host


def origin_allowed(scope) -> bool:
    """Exactly one Origin header, naming an allowed origin. Every browser sends one with a
    WebSocket; a request without one is refused, since it can only come from a program,
    which can as well send the right one."""
    sent = [value for name, value in scope.get("headers", []) if name == b"origin"]
    if len(sent) != 1:
        return False
    origin = origin_of(sent[0].decode("latin-1"))
    return origin is not None and any(matches(origin, ok) for ok in allowed_origins())


class OriginCheck:
    """ASGI middleware: a WebSocket from an origin not allowed is refused before it opens."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
