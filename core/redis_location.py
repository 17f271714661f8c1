"""Where Redis is: one server at REDIS_URL, or the master that Redis Sentinel names.

With Sentinels, every client (Celery's broker, the channel layer, our own bookkeeping) asks
them for the master when it connects, so a failover needs no restart. REDIS_URL then gives
only the password and database number of the master (`redis://:password@mymaster/0`: its
host is not used).
"""

from dataclasses import dataclass, field
from urllib.parse import quote

import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

# How Celery's broker and the channel layer ask the Sentinels: a Sentinel that does not answer
# is passed over for the next at once (both connect again by themselves).
ASKING = {"socket_timeout": 2, "socket_connect_timeout": 2}


@dataclass(frozen=True)
class RedisLocation:
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = "mymaster"
    sentinel_password: str = ""
    _parsed: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        if self.sentinels and not self.url.startswith("redis://"):
            # TLS (rediss://) or a socket cannot be asked of a master found through Sentinels
            # here: refuse at start-up rather than reach the master another way than meant.
            raise ValueError(
                "with REDIS_SENTINELS, REDIS_URL is redis://[:password@]name/db, not "
                f"{self.url.split(':', 1)[0]}://"
            )
        object.__setattr__(self, "_parsed", parse_url(self.url))

    @property
    def db(self) -> int:
        return int(self._parsed.get("db", 0))

    def connect(self, **options) -> redis.Redis:
        """A client with these options (timeouts, retry) for the current master."""
        if not self.sentinels:
            return redis.Redis.from_url(self.url, **options)
        sentinel = Sentinel(
            list(self.sentinels), sentinel_kwargs=self._sentinel_kwargs(options), **options
        )
        return sentinel.master_for(self.master, **self._master_auth(), db=self.db)

    def celery_broker_url(self) -> str:
        if self.url.startswith("unix://") and not self.sentinels:
            return "redis+socket://" + self.url.removeprefix("unix://")
        if not self.sentinels:
            return self.url
        auth = {name: quote(value, safe="") for name, value in self._master_auth().items()}
        credentials = f"{auth.get('username', '')}:{auth['password']}@" if auth else ""
        return ";".join(
            f"sentinel://{credentials}{host}:{port}/{self.db}" for host, port in self.sentinels
        )

    def celery_transport_options(self) -> dict:
        if not self.sentinels:
            return {}
        asking = {**ASKING, "retry": Retry(NoBackoff(), 0)}
        return {"master_name": self.master, "sentinel_kwargs": self._sentinel_kwargs(asking)}

    def channel_layer_host(self) -> str | dict:
        if not self.sentinels:
            return self.url
        return {
            "sentinels": list(self.sentinels),
            "master_name": self.master,
            "sentinel_kwargs": self._sentinel_kwargs(
                {**ASKING, "retry": AsyncRetry(NoBackoff(), 0)}
            ),
            "db": self.db,
            **self._master_auth(),
        }

    def _master_auth(self) -> dict:
        auth = {}
        if self._parsed.get("password"):
            auth["password"] = self._parsed["password"]
            if self._parsed.get("username"):
                auth["username"] = self._parsed["username"]
        return auth

    def _sentinel_kwargs(self, options: dict) -> dict:
        """The Sentinels are asked with the same timeouts and retries as the master (redis-py's
        default would retry each ten times, with a growing pause), and their own password."""
        kwargs = {k: v for k, v in options.items() if k.startswith("socket_") or k == "retry"}
        if self.sentinel_password:
            kwargs["password"] = self.sentinel_password
        return kwargs


def parse_sentinels(addresses: list[str]) -> tuple[tuple[str, int], ...]:
    """ "host:port" as REDIS_SENTINELS lists them (port 26379 when left out; "[::1]:26379")."""
    found = []
    for address in addresses:
        host, colon, port = address.strip().rpartition(":")
        if not colon or host.endswith(":"):  # no port given: a host name, or a bare IPv6
            host, port = address.strip(), ""
        found.append((host.strip("[]"), int(port or 26379)))
    return tuple(found)
