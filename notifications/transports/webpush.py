"""Web Push (RFC 8030, VAPID RFC 8292, payload encrypted as RFC 8291 says) to every browser
that keeps a person's responder page (`notifications.PushSubscription`): it shows the page
while the page is closed, and its buttons act through the recipient's own ACK link.

The one transport that reads rows: the person's subscriptions, and it forgets one its push
service says is gone (404, 410), as the protocol asks."""

import json
import time
from urllib.parse import urlsplit

import pywebpush
from django.conf import settings

from core import vapid

from .base import NOTIFY, TEST, Field, Sent, Transport, TransportError, http

# Browsers of one person pushed to (the newest subscriptions are kept, `responders.me`).
MOST_BROWSERS = 5
URGENCY = {"critical": "high", "high": "high", "warning": "normal", "info": "low"}


class WebPushTransport(Transport):
    label = "Push (browser)"
    reaches = "webpush"
    template_dir = "push"
    config_fields = (
        Field("ttl", "int", default=3600,
              help="Seconds a push service keeps a page for a phone that is off."),
    )  # fmt: skip

    def address_for(self, person=None) -> str:
        if person is not None and person.push_subscriptions.exists():
            return f"webpush:{person.pk}"
        return ""

    def send(self, out):
        if out.person is None:
            raise TransportError("Web Push reaches people, not a channel", permanent=True)
        payload = json.dumps({
            "title": out.message.subject[:250],
            "body": out.message.text.strip()[:1000],
            "url": out.message.ack_url,
            "tag": str(getattr(out.alarm, "pk", "")),
            "severity": getattr(out.alarm, "severity", "info"),
            "page": out.event in (NOTIFY, TEST),
        })  # fmt: skip
        headers = {
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.config.get("ttl", 3600)),
            "Urgency": URGENCY.get(getattr(out.alarm, "severity", ""), "normal"),
        }
        took, failed = [], []
        started = time.monotonic()
        for subscription in list(out.person.push_subscriptions.all()[:MOST_BROWSERS]):
            if time.monotonic() - started > 2 * settings.DELIVERY_TIMEOUT_SECONDS:
                break  # well inside the lease: a page is not taken again while it goes
            try:
                took.append(push(subscription, payload, headers))
            except TransportError as exc:
                if exc.status in ("HTTP 404", "HTTP 410"):
                    subscription.delete()  # the browser unsubscribed, or the service forgot it
                failed.append(exc)
        if not took:
            if not failed:
                raise TransportError("no browser subscribed", permanent=True)
            raise TransportError(
                "; ".join(exc.message for exc in failed),
                permanent=all(exc.permanent for exc in failed), status=failed[0].status,
            )  # fmt: skip
        return Sent(status="HTTP 201", response="; ".join(took))


def endpoint_allowed(url: str) -> bool:
    """Whether a browser's endpoint is at a push service we post to (WEBPUSH_SERVICE_HOSTS):
    a subscription is the browser's word, and must not make the broker post into the LAN."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    for allowed in (h.lower() for h in settings.WEBPUSH_SERVICE_HOSTS):
        if allowed.startswith(".") and host.endswith(allowed) and parts.scheme == "https":
            return True
        if host == allowed and parts.scheme in ("https", "http"):  # named exactly: one's own
            return True
    return False


def push(subscription, payload: str, headers: dict) -> str:
    """One encrypted, signed request to the subscription's push service."""
    if not endpoint_allowed(subscription.endpoint):
        raise TransportError("not a push service this broker posts to", permanent=True)
    info = {"endpoint": subscription.endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}}  # fmt: skip
    try:
        body = pywebpush.WebPusher(info).encode(payload.encode(), "aes128gcm")["body"]
    except Exception as exc:  # noqa: BLE001 (the keys are the browser's: any may be broken)
        raise TransportError(f"keys refused: {exc.__class__.__name__}", permanent=True) from exc
    origin = urlsplit(subscription.endpoint)
    signed = vapid.key().sign(
        {"sub": settings.VAPID_SUBJECT, "aud": f"{origin.scheme}://{origin.netloc}"}
    )
    response = http("POST", subscription.endpoint, data=body, headers={**headers, **signed})
    return f"{response.status_code} {origin.netloc}"
