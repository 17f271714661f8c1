"""Per-device request limits in Redis, failing open: a panic button is never refused
because Redis is down."""

import logging
import time

import redis

from core.redis_client import client

log = logging.getLogger(__name__)


def allow(key: str, per_minute: int) -> bool:
    """Count one request in the current minute's window; False once over the limit."""
    window = f"ratelimit:{key}:{int(time.time() // 60)}"
    try:
        with client().pipeline() as pipe:
            count, _ = pipe.incr(window).expire(window, 61).execute()
    except redis.RedisError:
        log.warning("rate limit unavailable (Redis down); allowing %s", key)
        return True
    return count <= per_minute
