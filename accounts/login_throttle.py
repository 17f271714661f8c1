"""Failed sign-ins are counted per address and per username in Redis; past the limit, sign-in
is refused for the rest of the window, even with the right password, so guessing stays slow.
Fails open: with Redis down, sign-in works unthrottled."""

import logging
import time

import redis
from django.conf import settings

from alarmsite.redis import client

log = logging.getLogger(__name__)


def _keys(ip: str | None, username: str) -> list[str]:
    window = int(time.time() // settings.LOGIN_FAILURE_WINDOW_SECONDS)
    return [
        f"login-failures:ip:{ip or 'unknown'}:{window}",
        f"login-failures:user:{username.strip().lower()[:150]}:{window}",
    ]


def blocked(ip: str | None, username: str) -> bool:
    try:
        counts = client().mget(_keys(ip, username))
    except redis.RedisError:
        log.warning("login throttle unavailable (Redis down)")
        return False
    return any(int(count or 0) >= settings.LOGIN_FAILURE_LIMIT for count in counts)


def failed(ip: str | None, username: str) -> None:
    try:
        with client().pipeline() as pipe:
            for key in _keys(ip, username):
                pipe.incr(key).expire(key, settings.LOGIN_FAILURE_WINDOW_SECONDS + 1)
            pipe.execute()
    except redis.RedisError:
        log.warning("login throttle unavailable (Redis down)")


def retry_after() -> int:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    return window - int(time.time()) % window
