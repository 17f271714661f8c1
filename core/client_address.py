"""The client's address. Behind a reverse proxy every request comes from the proxy, so the
address is taken from TRUSTED_PROXY_HEADER, but only when the request came from one of
TRUSTED_PROXIES: anyone else could write that header themselves."""

import ipaddress

from django.conf import settings


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def resolve(remote: str | None, forwarded: str | None) -> str | None:
    """The client address, from the peer's address and the trusted proxy header's value."""
    if not (forwarded and remote and settings.TRUSTED_PROXY_HEADER and _trusted(remote)):
        return remote or None
    # X-Forwarded-For is "client, proxy1, proxy2": each proxy appends; the first address
    # from the right that is not one of our proxies is the one our proxies saw.
    for address in reversed(forwarded.split(",")):
        address = address.strip()
        if address and not _trusted(address):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return remote  # a garbled header: the proxy is all we know
    return remote


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def of_request(request) -> str | None:
    header = settings.TRUSTED_PROXY_HEADER
    return resolve(request.META.get("REMOTE_ADDR"), header and request.META.get(_meta_key(header)))


def of_scope(scope) -> str | None:
    """The same for a WebSocket (ASGI) connection."""
    remote = (scope.get("client") or [None])[0]
    header = settings.TRUSTED_PROXY_HEADER.lower().encode()
    forwarded = next(
        (v.decode("latin-1") for k, v in scope.get("headers", []) if k == header), None
    )
    return resolve(remote, forwarded if header else None)
