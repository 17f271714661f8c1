"""The JSON raise and clear (POST /v1/alarms/raise and /clear): by a device with its token, or
by a user whose role allows it. A raise opens an alarm or counts another occurrence on the open
one with its dedup key; a clear resolves that one. Keys are per device token."""

import uuid

from django.db import transaction
from rest_framework import serializers

from core.labels import LabelsField, validate_labels
from core.storable_text import made_storable
from devices.auth import device_for
from devices.models import Device

from .. import lifecycle
from ..models import Severity
from ..timeline import Actor, note_made_storable
from . import devices
from .refusal import Refused, validated


class RaiseSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=50, default="api")
    dedup_key = serializers.CharField(max_length=200, required=False)
    title = serializers.CharField(max_length=255)
    message = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.CRITICAL)
    labels = LabelsField(required=False, default=dict, validators=[validate_labels])


class ClearSerializer(serializers.Serializer):
    dedup_key = serializers.CharField(max_length=200)
    message = serializers.CharField(max_length=10000, required=False, allow_blank=True)


def raise_alarm(body, device: Device | None, actor: Actor) -> lifecycle.Outcome:
    """A raise by this device (None: by a user allowed to raise), as sent."""
    data, changed = made_storable(body)
    data = validated(RaiseSerializer, data)
    if device:
        devices.admit(device)
    with transaction.atomic(savepoint=False):  # the fast path's group gives it a savepoint
        outcome = raise_validated(data, device, actor)
        note_made_storable(outcome, changed, actor)
    return outcome


def raise_validated(data: dict, device: Device | None, actor: Actor) -> lifecycle.Outcome:
    """A raise whose body RaiseSerializer validated (the go-live test's, too)."""
    return lifecycle.raise_alarm(
        source=data["source"],
        dedup_key=devices.scoped_dedup_key(device, data.get("dedup_key") or str(uuid.uuid4())),
        title=data["title"],
        message=data.get("message", ""),
        severity=data["severity"],
        labels=data["labels"],
        device=device,
        actor=actor,
    )


def raise_by_device(token: str, ip: str | None, body) -> lifecycle.Outcome | None:
    """A raise with this Bearer token, if it is a device's (None: it is not, and the request
    goes the API's whole way: it may be a user's API token)."""
    device, refusal = device_for(token, ip)
    if device is None:
        return None
    if refusal := refusal or devices.wrong_kind(device):
        raise Refused(403, refusal)
    return raise_alarm(body, device, devices.actor(device, ip))


def clear(body, device: Device | None, actor: Actor) -> lifecycle.Outcome:
    """Resolve the open alarm with the dedup key sent (this device's, or the users' shared)."""
    data, changed = made_storable(body)
    data = validated(ClearSerializer, data)
    if device:
        devices.admit(device)
    key = devices.scoped_dedup_key(device, data["dedup_key"])
    with transaction.atomic(savepoint=False):
        outcome = lifecycle.clear(key, actor, data.get("message", ""))
        if outcome is not None:
            note_made_storable(outcome, changed, actor)
    if outcome is None:  # refused outside the block, which an exception would roll back
        raise Refused(404, "no open alarm with this dedup_key")
    return outcome
