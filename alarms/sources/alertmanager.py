"""Prometheus Alertmanager's webhook (version 4): one alarm per alert fingerprint. `firing`
opens or updates it, `resolved` resolves it; resends that change nothing change nothing. The
integration is a device of its own kind, whose token opens this endpoint only."""

import hashlib
import json
import logging

from django.db import OperationalError, transaction
from rest_framework import serializers

from core.labels import LabelsField, validate_labels
from core.storable_text import made_storable, within
from devices.models import Device, Site

from .. import lifecycle
from ..timeline import Actor, note_made_storable
from . import devices, metric_rules
from .refusal import validated

log = logging.getLogger(__name__)

# Alertmanager has no fixed severities; these are the usual label values.
SEVERITY = {
    "critical": "critical", "page": "critical", "high": "high", "error": "high",
    "warning": "warning", "info": "info", "none": "info",
}  # fmt: skip
MAX_ALERTS = 1000  # in one group


class AlertSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["firing", "resolved"])
    labels = LabelsField(validators=[validate_labels])
    annotations = LabelsField(required=False, default=dict, validators=[validate_labels])
    startsAt = serializers.CharField(required=False, allow_blank=True, max_length=64)
    generatorURL = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    fingerprint = serializers.CharField(required=False, allow_blank=True, max_length=64)


class AlertmanagerSerializer(serializers.Serializer):
    version = serializers.CharField()
    status = serializers.ChoiceField(["firing", "resolved"])
    receiver = serializers.CharField(required=False, allow_blank=True, max_length=200)
    externalURL = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    alerts = AlertSerializer(many=True, max_length=MAX_ALERTS)

    def validate_version(self, value):
        if value != "4":
            raise serializers.ValidationError('Only webhook payloads of version "4" are read.')
        return value


def fingerprint(alert: dict) -> str:
    """Alertmanager's own fingerprint when it sends one, else a hash of the labels."""
    if alert.get("fingerprint"):
        return alert["fingerprint"]
    return hashlib.sha256(json.dumps(alert["labels"], sort_keys=True).encode()).hexdigest()[:16]


def receive(body, device: Device, by: Actor) -> list[dict]:
    """A webhook as sent by this integration: what became of each of its alerts."""
    payload, changed = made_storable(body)
    data = validated(AlertmanagerSerializer, payload)
    devices.admit(device)
    # An alert's `site` label names the site it is about (when the integration has none).
    named = {alert["labels"].get("site") for alert in data["alerts"]} - {None}
    sites = {site.name: site for site in Site.objects.filter(name__in=named)}
    return [
        apply_alone(device, by, alert, data, sites, within(changed, f"alerts[{n}]"))
        for n, alert in enumerate(data["alerts"])
    ]


def apply_alone(device, by: Actor, alert: dict, data: dict, sites: dict, changed) -> dict:
    """One alert in a transaction (a savepoint) of its own: an alert the database refuses
    costs none of the others, and what was stored is not answered as an error."""
    try:
        with transaction.atomic():
            return apply(device, by, alert, data, sites, changed)
    except OperationalError:
        # The store is away (503): Alertmanager sends the group again, which changes
        # nothing for the alerts already stored.
        raise
    except Exception:
        log.exception("alert %s of a group was not stored", fingerprint(alert))
        return {"fingerprint": fingerprint(alert), "alarm_id": None, "action": "failed",
                "error": metric_rules.REFUSED}  # fmt: skip


def apply(device: Device, by: Actor, alert: dict, data: dict, sites: dict, changed=()) -> dict:
    """One alert of a validated group; `changed`: where its text was made storable."""
    key = fingerprint(alert)
    dedup_key = f"device:{device.pk}:alertmanager:{key}"
    if alert["status"] == "resolved":
        outcome = lifecycle.clear(dedup_key, by, "Resolved in Alertmanager")
        alarm_id = str(outcome.alarm.pk) if outcome else None
        action = "resolved" if outcome and outcome.changed else "not open"
        return {"fingerprint": key, "alarm_id": alarm_id, "action": action}
    labels, annotations = alert["labels"], alert["annotations"]
    details = {"annotations": annotations}
    for name in ("generatorURL", "startsAt"):
        if alert.get(name):
            details[name] = alert[name]
    if data.get("externalURL"):
        details["externalURL"] = data["externalURL"]
    outcome = lifecycle.report(
        source="alertmanager",
        dedup_key=dedup_key,
        title=(annotations.get("summary") or labels.get("alertname") or "Alert")[:255],
        message=annotations.get("description", ""),
        severity=SEVERITY.get(labels.get("severity", "").lower(), "warning"),
        labels=labels,
        details=details,
        device=device,
        site=device.site or sites.get(labels.get("site")),
        actor=by,
    )
    note_made_storable(outcome, changed, by)
    action = (
        "raised" if outcome.created else "reopened" if outcome.reopened
        else "updated" if outcome.changed else "unchanged"
    )  # fmt: skip
    return {"fingerprint": key, "alarm_id": str(outcome.alarm.pk), "action": action}
