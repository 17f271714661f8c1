"""Liveness and readiness for load balancers and orchestrators.

`/healthz`: the web process answers. `/readyz`: what the alarm path needs is there, each part
by name: the database, Redis, a Celery worker and beat heard from within HEARD_WITHIN seconds
(each reports itself to Redis every REPORT_EVERY seconds from a thread of its main process);
503 when any is missing.
"""

import json
import logging
import time

import redis
from django.db import connection
from django.http import JsonResponse

from core.liveness import renew_forever
from core.redis_client import client

log = logging.getLogger(__name__)

HEARD_WITHIN = 60
REPORT_EVERY = 15
# What waits for the channels that keep a remote record in step (alarms/outbox_watch.py writes
# it as JSON every few seconds): a list of {channel, kind, waiting, oldest, failing_since,
# last_error}. It expires if nobody looks again.
OUTBOX_KEY = "health:outbox"
OUTBOX_KEPT_SECONDS = 60


def keep_outbox_backlog(channels: list[dict]) -> bool:
    """Keep what waits for the outbox channels for the board's snapshot, /readyz and /metrics;
    whether it differs from what was kept (False too when Redis cannot keep it)."""
    text = json.dumps(channels, sort_keys=True)
    try:
        before = client().set(OUTBOX_KEY, text, ex=OUTBOX_KEPT_SECONDS, get=True)
    except redis.RedisError:
        log.warning("could not keep the outbox backlog (Redis down)")
        return False
    return before is None or before.decode() != text


def outbox_backlog() -> list[dict] | None:
    """What the last look found waiting for the outbox channels; None when unknown."""
    try:
        found = client().get(OUTBOX_KEY)
    except redis.RedisError:
        return None
    return json.loads(found) if found is not None else None


def last_seen_key(part: str) -> str:
    return f"health:{part}:last_seen"


def heard_recently(seen) -> bool:
    """Whether a part's last report (epoch seconds as Redis keeps it; None: none) is recent."""
    return seen is not None and time.time() - float(seen) <= HEARD_WITHIN


def keep_reporting(part: str) -> None:
    """From now on, say every REPORT_EVERY seconds that this part (worker, beat) is alive."""
    renew_forever(
        part, lambda reporter: reporter.set(last_seen_key(part), time.time(), ex=HEARD_WITHIN * 2),
        REPORT_EVERY,
    )  # fmt: skip


def probes_first(get_response):
    """Middleware, first of all: /healthz and /readyz answer whatever Host a probe sends. A
    balancer's or Kubernetes' probe names the node's address, not one of ALLOWED_HOSTS, and
    would otherwise be refused 400 (every node out of the pool); they read nothing else of
    the request."""

    def middleware(request):
        probe = PROBES.get(request.path_info)
        return probe(request) if probe else get_response(request)

    return middleware


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    checks = {
        "database": _database(),
        "redis": _redis(),
        "worker": _heard_from("worker"),
        "beat": _heard_from("beat"),
    }
    # A provider that is away does not make this node unready; the backlog says it is away.
    checks["outbox"] = {"ok": True, "channels": outbox_backlog()}
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


def _database() -> dict:
    """Answers, and takes writes: a standby (a pooled connection to a primary that was demoted)
    would take no alarm."""
    read_only = "SELECT pg_is_in_recovery()" if connection.vendor == "postgresql" else "SELECT 0"
    try:
        with connection.cursor() as cursor:
            cursor.execute(read_only)
            (standby,) = cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 (any failure means not ready)
        return {"ok": False, "error": exc.__class__.__name__}
    if standby:
        return {"ok": False, "error": "a standby: read-only"}
    return {"ok": True}


def _redis() -> dict:
    try:
        client().ping()
    except redis.RedisError as exc:
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True}


def _heard_from(part: str) -> dict:
    try:
        seen = client().get(last_seen_key(part))
    except redis.RedisError:
        return {"ok": False, "error": "Redis is down: cannot tell"}
    if seen is None:
        return {"ok": False, "error": f"not heard from in the last {HEARD_WITHIN} s"}
    return {"ok": heard_recently(seen), "seconds_ago": round(time.time() - float(seen), 1)}


PROBES = {"/healthz": healthz, "/readyz": readyz}
