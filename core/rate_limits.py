"""Per-device request limits in Redis, failing open: a panic button is never refused
because Redis is down."""

import logging
import time

import redis

from core.redis_client import client

log = logging.getLogger(__name__)


def allow(key: str, per_minute: int, window_seconds: int = 60) -> bool:
    """Count one request in the current window (a minute unless told); False once over the
    limit."""
    window = f"ratelimit:{key}:{window_seconds}:{int(time.time() // window_seconds)}"
    try:
        with client().pipeline() as pipe:
            count, _ = pipe.incr(window).expire(window, window_seconds + 1).execute()
    except redis.RedisError:
        log.warning("rate limit unavailable (Redis down); allowing %s", key)
        return True
    return count <= per_minute
