"""Password reset requests are counted in Redis per client address and per email address asked
for, so nobody can flood a mailbox with reset emails, nor ask for many mailboxes from one
address. Every request counts, whether or not an account has that address, so the answer
tells nobody which addresses have one. Fails open, like sign-in: with Redis down, requests
are not limited."""

import logging
import time

import redis

from core.redis_client import client

log = logging.getLogger(__name__)

WINDOW_SECONDS = 3600
PER_ADDRESS = 5  # requests a window from one client address
PER_EMAIL = 3  # requests a window for one email address


def _limits(ip: str | None, email: str) -> dict[str, int]:
    """Each counter's key in the current window, and its limit."""
    window = int(time.time() // WINDOW_SECONDS)
    return {
        f"password-reset:ip:{ip or 'unknown'}:{window}": PER_ADDRESS,
        f"password-reset:email:{email.strip().lower()[:254]}:{window}": PER_EMAIL,
    }


def allow(ip: str | None, email: str) -> bool:
    """Count one request; False once the address or the email address is over its limit."""
    limits = _limits(ip, email)
    try:
        with client().pipeline() as pipe:
            for key in limits:
                pipe.incr(key).expire(key, WINDOW_SECONDS + 1)
            counts = pipe.execute()[::2]
    except redis.RedisError:
        log.warning("password reset throttle unavailable (Redis down)")
        return True
    return all(count <= limit for count, limit in zip(counts, limits.values(), strict=True))


def retry_after() -> int:
    return WINDOW_SECONDS - int(time.time()) % WINDOW_SECONDS
