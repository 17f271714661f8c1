"""Replies on Signal: what signal-cli-rest-api received for each Signal channel's number,
fetched by the worker (`GET /v1/receive/<number>`, its normal and native modes), stored, then
handled as any reply.

signal-cli hands a message over once: it is stored before anything else is done with it, so a
worker that dies after the fetch loses at most what it had not stored yet.
"""

import logging
from urllib.parse import quote

import redis

from core.redis_client import client
from notifications.models import NotificationChannel
from notifications.transports.base import TransportError, http

from . import answers, replies

log = logging.getLogger(__name__)

# A fetch's turn outlives a fetch that hung (the transport's timeout) but not a dead worker long.
TURN_SECONDS = 60


def poll() -> int:
    """Fetch, store and handle the replies of every enabled Signal channel that receives;
    return how many were new. A fetch still running (a slow signal-cli) is not doubled."""
    new = 0
    for channel in NotificationChannel.objects.filter(kind="signal", enabled=True):
        if not channel.config.get("receive", True) or not _take_turn(channel):
            continue
        try:
            stored = [r for r in map(_store(channel), _fetch(channel)) if r is not None]
        except TransportError as exc:
            log.warning("Signal replies of %s not fetched: %s", channel.name,
                        channel.transport().redact(exc.message))  # fmt: skip
            continue
        finally:
            _end_turn(channel)
        new += len(stored)
        for reply in stored:
            answers.handle_and_answer(reply.pk)
    return new


def _turn_key(channel) -> str:
    return f"signal-receive:{channel.pk}"


def _take_turn(channel) -> bool:
    """One fetch at a time per number: signal-cli locks its account for each."""
    try:
        return bool(client().set(_turn_key(channel), "1", nx=True, ex=TURN_SECONDS))
    except redis.RedisError:
        return True  # Redis away: fetch anyway


def _end_turn(channel) -> None:
    try:
        client().delete(_turn_key(channel))
    except redis.RedisError:
        pass


def _fetch(channel) -> list[dict]:
    config = channel.config
    url = f"{config['url'].rstrip('/')}/v1/receive/{quote(config['number'], safe='+')}"
    response = http("GET", url, params={"timeout": "1"}, headers=config.get("headers", {}))
    try:
        body = response.json()
    except ValueError:
        raise TransportError("the receive answer is not JSON") from None
    return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


def _store(channel):
    def store(item: dict):
        envelope = item.get("envelope") or {}
        message = envelope.get("dataMessage") or {}
        text = message.get("message")
        sender = envelope.get("sourceNumber") or envelope.get("source") or ""
        if not isinstance(text, str) or not isinstance(sender, str) or not sender:
            return None  # a receipt, a typing notice, a reaction
        if message.get("groupInfo") or message.get("groupV2"):
            return None  # said in a group (an alarm channel's): not an answer to a page
        provider_id = f"{sender}:{envelope.get('timestamp') or message.get('timestamp') or ''}"
        return replies.receive(channel, "signal", sender, text, provider_id)

    return store
