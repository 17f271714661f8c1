"""Failed sign-ins are counted in Redis per username and address together, and per address;
past a limit, sign-in is refused for the rest of the window, even with the right password, so
guessing stays slow. Never per username alone: a stranger failing for a dispatcher's name
would lock them out everywhere, during an incident too. Fails open: with Redis down, sign-in
works unthrottled."""

import logging
import time

import redis
from django.conf import settings

from core.redis_client import client

log = logging.getLogger(__name__)

# One address may fail this many times LOGIN_FAILURE_LIMIT for all usernames together (an
# office behind one NAT address, where several people mistype).
ADDRESS_LIMIT_FACTOR = 5


def _limits(ip: str | None, username: str) -> dict[str, int]:
    """Each counter's key in the current window, and its limit."""
    window = int(time.time() // settings.LOGIN_FAILURE_WINDOW_SECONDS)
    ip, name = ip or "unknown", username.strip().lower()[:150]
    return {
        # The address first: it holds no "|", so no two pairs share a key.
        f"login-failures:pair:{ip}|{name}:{window}": settings.LOGIN_FAILURE_LIMIT,
        f"login-failures:ip:{ip}:{window}": settings.LOGIN_FAILURE_LIMIT * ADDRESS_LIMIT_FACTOR,
    }


def blocked(ip: str | None, username: str) -> bool:
    limits = _limits(ip, username)
    try:
        counts = client().mget(list(limits))
    except redis.RedisError:
        log.warning("login throttle unavailable (Redis down)")
        return False
    return any(
        int(count or 0) >= limit for count, limit in zip(counts, limits.values(), strict=True)
    )


def failed(ip: str | None, username: str) -> None:
    try:
        with client().pipeline() as pipe:
            for key in _limits(ip, username):
                pipe.incr(key).expire(key, settings.LOGIN_FAILURE_WINDOW_SECONDS + 1)
            pipe.execute()
    except redis.RedisError:
        log.warning("login throttle unavailable (Redis down)")


def retry_after() -> int:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    return window - int(time.time()) % window
