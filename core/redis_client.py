"""One Redis client for small, fast bookkeeping (rate limits, board sequence numbers).

Short timeouts and no retries: callers fail open rather than hold up an alarm when Redis is
slow or down (redis-py would otherwise retry with a growing backoff).
"""

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

_clients: dict[str, redis.Redis] = {}


def client() -> redis.Redis:
    url = settings.REDIS_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(
            url, socket_timeout=0.3, socket_connect_timeout=0.3, retry=Retry(NoBackoff(), 0)
        )
    return _clients[url]
