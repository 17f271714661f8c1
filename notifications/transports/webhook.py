"""Our own JSON event, for every lifecycle change, signed so the receiver knows it is ours.

Signature: `X-Alarm-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with the
Unix time in `X-Alarm-Timestamp`; a receiver recomputes it over the raw body and rejects old
timestamps (docs/WEBHOOKS.md).
"""

import hashlib
import hmac
import json
import time

from .base import FOLLOW_UPS, Field, Transport, answered, http

SIGNATURE_HEADER = "X-Alarm-Signature"
TIMESTAMP_HEADER = "X-Alarm-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


class WebhookTransport(Transport):
    label = "Signed JSON webhook"
    follows_up = FOLLOW_UPS
    test_resolves = True  # docs/WEBHOOKS.md promises receivers the resolve
    ack_link = False
    template_dir = "webhook"
    config_fields = (
        Field("url", "url", required=True),
        Field("secret", secret=True, help="HMAC-SHA256 key; unsigned when empty."),
        Field("headers", "dict", default={}, secret=True, help="Extra request headers."),
    )

    def send(self, out):
        body = json.dumps(out.message.payload, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(time.time()))
        # Configured headers first: they may add to ours, never replace them.
        headers = {
            **self.config.get("headers", {}),
            "Content-Type": "application/json",
            "User-Agent": "alarm-broker",
            "X-Alarm-Event": out.message.payload["event"],
            # The same on every attempt: a receiver drops what it already took.
            "Idempotency-Key": out.message.payload["event_id"],
            TIMESTAMP_HEADER: timestamp,
        }
        if self.config.get("secret"):
            headers[SIGNATURE_HEADER] = signature(self.config["secret"], timestamp, body)
        return answered(http("POST", self.config["url"], data=body, headers=headers))
