"""PagerDuty's Events API v2 (POST /v2/enqueue), so any tool that can send to PagerDuty can send
to us: `trigger` opens an alarm (or counts another occurrence), `acknowledge` and `resolve` act
on the open one with the event's dedup key. The routing key in the body is the integration's
token; dedup keys are per routing key, as PagerDuty's are. Refusals come in PagerDuty's own error
shape, which its clients read."""

import uuid

from django.db import transaction
from rest_framework import serializers

from core.storable_text import made_storable
from devices.auth import device_for
from devices.models import Device

from .. import lifecycle
from ..timeline import Actor, note_made_storable
from . import devices
from .refusal import Refused, field_errors

SEVERITY = {"critical": "critical", "error": "high", "warning": "warning", "info": "info"}
THROTTLED = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly. Please retry later.",
}


class PayloadSerializer(serializers.Serializer):
    summary = serializers.CharField(max_length=1024)
    source = serializers.CharField(max_length=255)
    severity = serializers.ChoiceField(list(SEVERITY))
    timestamp = serializers.CharField(required=False, allow_blank=True, max_length=64)
    component = serializers.CharField(required=False, allow_blank=True, max_length=255)
    group = serializers.CharField(required=False, allow_blank=True, max_length=255)
    custom_details = serializers.JSONField(required=False, default=None)

    def get_fields(self):
        fields = super().get_fields()
        # "class" is a Python keyword: declared here under its wire name.
        fields["class"] = serializers.CharField(required=False, allow_blank=True, max_length=255)
        return fields


class EventSerializer(serializers.Serializer):
    routing_key = serializers.CharField(max_length=200)
    event_action = serializers.ChoiceField(["trigger", "acknowledge", "resolve"])
    dedup_key = serializers.CharField(required=False, allow_blank=True, max_length=255)
    payload = PayloadSerializer(required=False)
    client = serializers.CharField(required=False, allow_blank=True, max_length=255)
    client_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    links = serializers.JSONField(required=False, default=list)

    def validate(self, data):
        if data["event_action"] == "trigger" and "payload" not in data:
            raise serializers.ValidationError("'payload' is required for trigger events.")
        if data["event_action"] != "trigger" and not data.get("dedup_key"):
            raise serializers.ValidationError(
                f"'dedup_key' is required for {data['event_action']} events."
            )
        return data


def invalid(errors: list[str], status: int = 400) -> Refused:
    body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    return Refused(status, "; ".join(errors), body=body)


def flat_errors(detail) -> list[str]:
    """Each problem on a line of its own, named by its field's path as PagerDuty names it
    ("payload.summary: …")."""
    return [f"{path}: {message}" if path else message for path, message in field_errors(detail)]


def dedup_key(device: Device, key: str) -> str:
    return devices.scoped_dedup_key(device, f"pagerduty:{key}")


def receive(body, ip: str | None) -> str:
    """An event as sent from this address: the dedup key it is known by (the event's, or a new
    one for a trigger without one)."""
    event, changed = made_storable(body)
    if not isinstance(event, dict):
        raise invalid(["The body must be a JSON object."])
    serializer = EventSerializer(data=event)
    if not serializer.is_valid():
        raise invalid(flat_errors(serializer.errors))
    data = serializer.validated_data
    device, refusal = device_for(data["routing_key"], ip)
    if device is None or device.kind != Device.Kind.PAGERDUTY:
        raise invalid(["Invalid routing key."])
    if refusal:
        raise invalid([refusal], status=403)
    if devices.over_limit(device):
        raise Refused(429, THROTTLED["message"], body=THROTTLED, **{"Retry-After": "60"})
    key = data.get("dedup_key") or uuid.uuid4().hex
    scoped, by = dedup_key(device, key), devices.integration_actor(device, ip)
    if data["event_action"] == "trigger":
        with transaction.atomic(savepoint=False):
            note_made_storable(trigger(device, by, scoped, data), changed, by)
    elif data["event_action"] == "acknowledge":
        open_alarm = lifecycle.open_alarm(scoped)
        if open_alarm is not None:
            lifecycle.acknowledge(open_alarm.pk, by, "Acknowledged through PagerDuty events")
    else:
        lifecycle.clear(scoped, by, "Resolved through PagerDuty events")
    return key


def trigger(device: Device, by: Actor, scoped_key: str, data: dict) -> lifecycle.Outcome:
    """A validated trigger event (the go-live test's, too)."""
    payload = data["payload"]
    labels = {"origin": payload["source"]}
    for name in ("component", "group", "class"):
        if payload.get(name):
            labels[name] = payload[name]
    details = {"custom_details": payload.get("custom_details")}
    if data.get("links"):
        details["links"] = data["links"]
    if data.get("client_url"):
        details["client"] = {"name": data.get("client", ""), "url": data["client_url"]}
    return lifecycle.report(
        source="pagerduty",
        dedup_key=scoped_key,
        title=payload["summary"][:255],
        message=payload["summary"] if len(payload["summary"]) > 255 else "",
        severity=SEVERITY[payload["severity"]],
        labels=labels,
        details=details,
        device=device,
        actor=by,
    )
