"""The device fast path: the two requests most alarms are raised with (a phone's emergency key,
a device's JSON raise) answered straight from ASGI, without Django's request handling, their
database work committed in groups (alarms/ingest/group_commit.py).

The answers are the API's own: the same sources decide them (alarms/sources/devices.py and
json_api.py) and the API's body is sent (alarms/api/views.py's `raised_body`). Whatever is
not a device's request goes on to Django unchanged: other paths and methods, no token or a
user's API token, a body that is not JSON, and plain HTTP when HTTPS is required (Django
redirects it).
"""

import json
import logging
from functools import partial
from urllib.parse import parse_qs

from django.conf import settings
from django.db import OperationalError
from rest_framework.utils.encoders import JSONEncoder

from alarms.api import json_body
from alarms.api.errors import STORE_UNAVAILABLE
from alarms.api.views import raised_body
from alarms.ingest.group_commit import GroupCommitter
from alarms.sources import devices, json_api
from alarms.sources.refusal import Refused
from core import client_address

log = logging.getLogger(__name__)

YEALINK, RAISE = "/v1/yealink/alarm", "/v1/alarms/raise"
HEADERS = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff"),
           (b"cache-control", b"no-store")]  # fmt: skip


class DeviceFastPath:
    """ASGI in front of Django (alarmsite/asgi.py)."""

    def __init__(self, app):
        self.app = app
        self.committer = GroupCommitter()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _secure_enough(scope):
            return await self.app(scope, receive, send)
        if scope["path"] == YEALINK and scope["method"] == "GET":
            query = parse_qs(scope["query_string"].decode("utf-8", "replace"))
            token, mac = (query.get(name, [None])[-1] for name in ("token", "mac"))
            if token:
                ip = client_address.of_scope(scope)
                return await self._answer(send, partial(_decided, devices.press, token, ip, mac))
        if scope["path"] == RAISE and scope["method"] == "POST":
            token = _bearer(scope)
            if token and _header(scope, b"content-type").startswith("application/json"):
                return await self._raise(scope, receive, send, token)
        return await self.app(scope, receive, send)

    async def _raise(self, scope, receive, send, token: str):
        body = await _body(receive)
        if body is None:
            return await _send(send, 413, {"error": "request body too large"})
        try:
            data = json_body.parse(body)
        except ValueError as exc:
            return await _send(send, 400, {"error": f"JSON parse error - {exc}"})
        ip = client_address.of_scope(scope)
        work = partial(_decided, json_api.raise_by_device, token, ip, data)
        if not await self._answer(send, work, created=201):
            # Not a device's token: the API's whole way, with the body read here.
            await self.app(scope, _replay(body, receive), send)

    async def _answer(self, send, work, created: int = 200) -> bool:
        """Send the answer `work` gives in the next group (`created`: the status of a new
        alarm); False if it gave none."""
        try:
            decided = await self.committer.run(work)
        except OperationalError:
            await _send(send, 503, STORE_UNAVAILABLE, {"Retry-After": "5"})
            return True
        except Exception:
            log.exception("a device request failed")
            await _send(send, 500, {"error": "internal error; nothing may have been stored"})
            return True
        if decided is None:
            return False
        if isinstance(decided, Refused):
            await _send(send, decided.status, decided.body, decided.headers)
        else:
            await _send(send, created if decided.created else 200, raised_body(decided))
        return True


def _decided(source, *args):
    """What the source decided: its outcome, or its refusal as a value, so that what it wrote
    before refusing (the device seen, its offline alarm resolved) commits with the group."""
    try:
        return source(*args)
    except Refused as refusal:
        return refusal


async def _send(send, status: int, body: dict, headers: dict | None = None) -> None:
    content = json.dumps(body, cls=JSONEncoder).encode()
    extra = [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    length = [(b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": HEADERS + extra + length})  # fmt: skip
    await send({"type": "http.response.body", "body": content})


async def _body(receive) -> bytes | None:
    """The request's body; None once it is larger than Django would take."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return None
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that gives Django the body already read, then whatever comes next."""
    given = False

    async def again():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def _header(scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


def _bearer(scope) -> str | None:
    scheme, _, token = _header(scope, b"authorization").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _secure_enough(scope) -> bool:
    """Whether Django would serve this request rather than redirect it to HTTPS."""
    if not settings.SECURE_SSL_REDIRECT or scope.get("scheme") == "https":
        return True
    header, value = settings.SECURE_PROXY_SSL_HEADER or ("", "")
    name = header.removeprefix("HTTP_").lower().replace("_", "-").encode()
    return bool(name) and _header(scope, name) == value
