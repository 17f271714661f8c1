"""What a provider took, kept in Redis the moment it answered: a message whose sender died
before it recorded the answer (messages sent together are recorded ten at a time) is then
recorded as sent when it is taken again, not sent a second time. Only the message whose answer
never reached its sender is sent again (at least once).

Without Redis nothing is kept and such a message is sent again, as before; a failed write
pauses the marks for a while, so a dead Redis costs one short timeout now and then.
"""

import json
import logging
import time
from datetime import datetime

import redis

from core.redis_client import client

from .transports.base import Sent

log = logging.getLogger(__name__)

KEEP_SECONDS = 3600  # far longer than any lease
PAUSE_SECONDS = 10.0
_paused_until = 0.0


def _key(delivery) -> str:
    return f"alarmbroker:sent:{delivery.pk}"


def remember(delivery, sent: Sent) -> None:
    """The provider took this attempt of the delivery (its fields hold what it answered)."""
    global _paused_until
    if delivery.pk is None or time.monotonic() < _paused_until:
        return
    mark = {
        "attempt": delivery.attempts,
        "status": sent.status,
        "message_id": sent.message_id,
        "response": delivery.response,
        "ref": sent.ref,
        "latency_ms": delivery.latency_ms,
        "sent_at": delivery.sent_at.isoformat(),
    }
    try:
        client().set(_key(delivery), json.dumps(mark), ex=KEEP_SECONDS)
    except redis.RedisError:
        _paused_until = time.monotonic() + PAUSE_SECONDS
        log.warning("could not mark messages sent (Redis down); one taken again goes again")


def forget(deliveries) -> None:
    """Their answers are recorded: the marks are done with."""
    if time.monotonic() < _paused_until:
        return
    try:
        client().delete(*(_key(delivery) for delivery in deliveries))
    except redis.RedisError:
        pass  # they expire


def taken_before(delivery) -> Sent | None:
    """What the provider answered to the delivery's last attempt, when it took it; its fields
    are set from it."""
    try:
        found = client().get(_key(delivery))
    except redis.RedisError:
        return None
    mark = json.loads(found) if found else None
    if not mark or mark["attempt"] != delivery.attempts:
        return None
    delivery.response, delivery.latency_ms = mark["response"], mark["latency_ms"]
    delivery.sent_at = datetime.fromisoformat(mark["sent_at"])
    return Sent(status=mark["status"], message_id=mark["message_id"], ref=mark["ref"])
