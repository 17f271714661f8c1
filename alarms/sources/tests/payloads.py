"""What the sources' tests send: real payloads as their senders post them, kept as files beside
the tests (fixtures/<source>/<name>.json), the devices that send them, and how they post."""

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def payload(source: str, name: str) -> dict:
    """A fresh copy of fixtures/<source>/<name>.json, to send or to change first."""
    return json.loads((FIXTURES / source / f"{name}.json").read_text())


def integration(make_device, kind, **fields):
    """An integration of this kind (mapped to no room), and its token."""
    return make_device(f"{kind} integration", kind=kind, room=None, **fields)


def pagerduty_event(routing_key, action="trigger", dedup_key="db-primary/disk", **payload_fields):
    """What a PagerDuty Events API v2 client sends: the disk-full trigger, or an acknowledge or
    resolve of its dedup key; `payload_fields` change the trigger's payload."""
    if action != "trigger":
        return {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}
    event = payload("pagerduty", "disk_full_trigger")
    event.update(routing_key=routing_key, dedup_key=dedup_key)
    event["payload"].update(payload_fields)
    return event


def post(client, path, body, token=None, **extra):
    """A JSON POST (a body given as text or bytes goes as it is), with a Bearer token if any."""
    if token:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data, content_type="application/json", **extra)
