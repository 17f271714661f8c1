"""Replies on Signal: what signal-cli-rest-api received for each Signal channel's number,
fetched by the worker (`GET /v1/receive/<number>`, its normal and native modes), stored, then
handled as any reply.

signal-cli hands a message over once: it is stored before anything else is done with it, so a
worker that dies after the fetch loses at most what it had not stored yet.
"""

import logging
from urllib.parse import quote

from notifications.models import NotificationChannel
from notifications.transports.base import TransportError, http

from . import answers, replies

log = logging.getLogger(__name__)


def poll() -> int:
    """Fetch, store and handle the replies of every enabled Signal channel that receives;
    return how many were new."""
    new = 0
    for channel in NotificationChannel.objects.filter(kind="signal", enabled=True):
        if not channel.config.get("receive", True):
            continue
        try:
            stored = [r for r in map(_store(channel), _fetch(channel)) if r is not None]
        except TransportError as exc:
            log.warning("Signal replies of %s not fetched: %s", channel.name, exc.message)
            continue
        new += len(stored)
        for reply in stored:
            if handled := replies.handle(reply.pk):
                answers.send(handled)
    return new


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
        provider_id = f"{sender}:{envelope.get('timestamp') or message.get('timestamp') or ''}"
        return replies.receive(channel, "signal", sender, text, provider_id)

    return store
