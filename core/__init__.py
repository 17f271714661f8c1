"""Building blocks the apps share: they import no app (the Redis client, task queueing and
leases, the per-process configuration cache, bulk SQL, deferred writes, tokens, the client's
address, logging, label matchers, time windows)."""
