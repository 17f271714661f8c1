"""Redis clients: one for small, fast bookkeeping (rate limits, board sequence numbers), and
others made with their own options (core.liveness's reporters).

The bookkeeping client has short timeouts and no retries: callers fail open rather than hold
up an alarm when Redis is slow or down (redis-py would otherwise retry with a growing backoff).
Both find the master through Sentinel when REDIS_SENTINELS is set.
"""

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.redis_location import RedisLocation

_clients: dict[tuple, redis.Redis] = {}


def _where() -> tuple:
    return (settings.REDIS_URL, settings.REDIS_SENTINELS, settings.REDIS_SENTINEL_MASTER,
            settings.REDIS_SENTINEL_PASSWORD)  # fmt: skip


def location(url: str = "") -> RedisLocation:
    """Where Redis is now (read at each call: a test may point REDIS_URL elsewhere), or where
    `url` names it with the same Sentinels."""
    now, *sentinels = _where()
    return RedisLocation(url or now, *sentinels)


def connect(**options) -> redis.Redis:
    """A client of its own, with these options."""
    return location().connect(**options)


def client() -> redis.Redis:
    # Called several times on every raise: the settings are compared, the URL parsed only once.
    where = _where()
    if where not in _clients:
        _clients[where] = location().connect(
            socket_timeout=0.3, socket_connect_timeout=0.3, retry=Retry(NoBackoff(), 0)
        )
    return _clients[where]
