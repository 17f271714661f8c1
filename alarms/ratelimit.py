"""Per-device request limits in Redis, failing open: a panic button is never refused
because Redis is down."""

import logging
import time

import redis
from django.conf import settings

log = logging.getLogger(__name__)
_client = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.3, socket_connect_timeout=0.3
        )
    return _client


def allow(key: str, per_minute: int) -> bool:
    """Count one request in the current minute's window; False once over the limit."""
    window = f"ratelimit:{key}:{int(time.time() // 60)}"
    try:
        with _redis().pipeline() as pipe:
            count, _ = pipe.incr(window).expire(window, 61).execute()
    except redis.RedisError:
        log.warning("rate limit unavailable (Redis down); allowing %s", key)
        return True
    return count <= per_minute
