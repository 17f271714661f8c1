"""Alarms from the tools people already run: Prometheus Alertmanager's webhook, a PagerDuty
Events API v2 endpoint and metric samples; plus device heartbeats. Each integration is a Device
of its own kind with its own token, so a leaked Alertmanager token cannot press a panic button."""

import hashlib
import json
import logging
import math
import uuid
from datetime import UTC, datetime

from django.db import OperationalError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.storable_text import made_storable, within
from devices.auth import device_for
from devices.models import Device, Site

from .. import lifecycle
from ..sources import metric_rules
from ..timeline import Actor
from . import openapi
from .errors import error
from .openapi import errors
from .serializers import LabelsField, validate_labels
from .views import PARSERS, client_ip, note_made_storable, refuse_over_limit

log = logging.getLogger(__name__)

# Alertmanager has no fixed severities; these are the usual label values.
ALERTMANAGER_SEVERITY = {
    "critical": "critical", "page": "critical", "high": "high", "error": "high",
    "warning": "warning", "info": "info", "none": "info",
}  # fmt: skip
PAGERDUTY_SEVERITY = {"critical": "critical", "error": "high", "warning": "warning", "info": "info"}
MAX_BATCH = 1000  # alerts in an Alertmanager group, samples in a metrics batch
THROTTLED = {
    "status": "throttle event",
    "message": "Requests for this service are arriving too quickly. Please retry later.",
}


def _device_actor(request, device: Device) -> Actor:
    return Actor(f"{device.get_kind_display()} {device.name}", ip=client_ip(request))


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
    alerts = AlertSerializer(many=True, max_length=MAX_BATCH)

    def validate_version(self, value):
        if value != "4":
            raise serializers.ValidationError('Only webhook payloads of version "4" are read.')
        return value


def fingerprint(alert: dict) -> str:
    """Alertmanager's own fingerprint when it sends one, else a hash of the labels."""
    if alert.get("fingerprint"):
        return alert["fingerprint"]
    return hashlib.sha256(json.dumps(alert["labels"], sort_keys=True).encode()).hexdigest()[:16]


class AlertmanagerView(APIView):
    """POST /v1/integrations/alertmanager: one alarm per alert fingerprint; `firing` opens or
    updates it, `resolved` resolves it. Resends that change nothing change nothing."""

    parser_classes = PARSERS
    device_kind = Device.Kind.ALERTMANAGER
    device_refused = "an Alertmanager integration token is required"

    @extend_schema(
        auth=[openapi.BEARER],
        request=AlertmanagerSerializer,
        responses={
            200: openapi.AlertmanagerResultSerializer,
            **errors(400, 401, 403, 413, 429, 503),
        },
    )
    def post(self, request):
        device = request.auth  # an Alertmanager integration (the permission checked)
        payload, changed = made_storable(request.data)
        serializer = AlertmanagerSerializer(data=payload)
        serializer.is_valid(raise_exception=True)
        if limited := refuse_over_limit(device):
            return limited
        data, actor = serializer.validated_data, _device_actor(request, device)
        # An alert's `site` label names the site it is about (when the integration has none).
        named = {alert["labels"].get("site") for alert in data["alerts"]} - {None}
        sites = {site.name: site for site in Site.objects.filter(name__in=named)}
        results = [
            self.apply_alone(device, actor, alert, data, sites, within(changed, f"alerts[{n}]"))
            for n, alert in enumerate(data["alerts"])
        ]
        return Response({"alerts": results})

    @classmethod
    def apply_alone(cls, device, actor, alert: dict, data: dict, sites: dict, changed) -> dict:
        """One alert in a transaction (a savepoint) of its own: an alert the database refuses
        costs none of the others, and what was stored is not answered as an error."""
        try:
            with transaction.atomic():
                return cls.apply(device, actor, alert, data, sites, changed)
        except OperationalError:
            # The store is away (503): Alertmanager sends the group again, which changes
            # nothing for the alerts already stored.
            raise
        except Exception:
            log.exception("alert %s of a group was not stored", fingerprint(alert))
            return {"fingerprint": fingerprint(alert), "alarm_id": None, "action": "failed",
                    "error": metric_rules.REFUSED}  # fmt: skip

    @staticmethod
    def apply(
        device: Device, actor: Actor, alert: dict, data: dict, sites: dict, changed=()
    ) -> dict:
        """One alert of a group; `changed`: where its text was made storable."""
        key = fingerprint(alert)
        dedup_key = f"device:{device.pk}:alertmanager:{key}"
        if alert["status"] == "resolved":
            outcome = lifecycle.clear(dedup_key, actor, "Resolved in Alertmanager")
            alarm_id = str(outcome.alarm.pk) if outcome else None
            action = "resolved" if outcome and outcome.changed else "not open"
            return {"fingerprint": key, "alarm_id": alarm_id, "action": action}
        labels, annotations = alert["labels"], alert["annotations"]
        severity = ALERTMANAGER_SEVERITY.get(labels.get("severity", "").lower(), "warning")
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
            severity=severity,
            labels=labels,
            details=details,
            device=device,
            site=device.site or sites.get(labels.get("site")),
            actor=actor,
        )
        note_made_storable(outcome, changed, actor)
        action = (
            "raised" if outcome.created else "reopened" if outcome.reopened
            else "updated" if outcome.changed else "unchanged"
        )  # fmt: skip
        return {"fingerprint": key, "alarm_id": str(outcome.alarm.pk), "action": action}


class PagerDutyPayloadSerializer(serializers.Serializer):
    summary = serializers.CharField(max_length=1024)
    source = serializers.CharField(max_length=255)
    severity = serializers.ChoiceField(list(PAGERDUTY_SEVERITY))
    timestamp = serializers.CharField(required=False, allow_blank=True, max_length=64)
    component = serializers.CharField(required=False, allow_blank=True, max_length=255)
    group = serializers.CharField(required=False, allow_blank=True, max_length=255)
    custom_details = serializers.JSONField(required=False, default=None)

    def get_fields(self):
        fields = super().get_fields()
        # "class" is a Python keyword: declared here under its wire name.
        fields["class"] = serializers.CharField(required=False, allow_blank=True, max_length=255)
        return fields


class PagerDutyEventSerializer(serializers.Serializer):
    routing_key = serializers.CharField(max_length=200)
    event_action = serializers.ChoiceField(["trigger", "acknowledge", "resolve"])
    dedup_key = serializers.CharField(required=False, allow_blank=True, max_length=255)
    payload = PagerDutyPayloadSerializer(required=False)
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


def pagerduty_error(errors: list[str], code: int = 400) -> Response:
    """PagerDuty's own error shape, which its clients read."""
    body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    return Response(body, status=code)


def _flat_errors(detail, path="") -> list[str]:
    """Each problem on a line of its own, named by its field's path as PagerDuty names it
    ("payload.summary: …")."""
    if isinstance(detail, dict):
        return [e for key, value in detail.items() for e in _flat_errors(value, _in(path, key))]
    if isinstance(detail, list):
        return [e for item in detail for e in _flat_errors(item, path)]
    return [f"{path}: {detail}" if path else str(detail)]


def _in(path: str, key) -> str:
    if key == "non_field_errors":
        return path
    return f"{path}.{key}" if path else str(key)


def pagerduty_dedup_key(device: Device, key: str) -> str:
    """PagerDuty's dedup keys are per routing key: here, per integration."""
    return f"device:{device.pk}:pagerduty:{key}"


class PagerDutyEventsView(APIView):
    """POST /v2/enqueue (and /v1/integrations/pagerduty): PagerDuty's Events API v2, so any
    tool that can send to PagerDuty can send to us. The routing key is the integration token."""

    parser_classes = PARSERS
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        auth=[],  # the routing key in the body is the token
        tags=["integrations"],
        request=PagerDutyEventSerializer,
        responses={
            202: openapi.PagerDutyAcceptedSerializer,
            400: OpenApiResponse(
                openapi.PagerDutyInvalidSerializer, "Invalid event or routing key."
            ),
            403: OpenApiResponse(openapi.PagerDutyInvalidSerializer, "Key not allowed from here."),
            429: openapi.PagerDutyThrottledSerializer,
        },
    )
    def post(self, request):
        try:
            body = request.data
        except ParseError as exc:  # not JSON: answered as PagerDuty answers it
            return pagerduty_error([str(exc.detail)])
        event, changed = made_storable(body)
        if not isinstance(event, dict):
            return pagerduty_error(["The body must be a JSON object."])
        serializer = PagerDutyEventSerializer(data=event)
        if not serializer.is_valid():
            return pagerduty_error(_flat_errors(serializer.errors))
        data = serializer.validated_data
        device, refusal = device_for(data["routing_key"], client_ip(request))
        if device is None or device.kind != Device.Kind.PAGERDUTY:
            return pagerduty_error(["Invalid routing key."])
        if refusal:
            return pagerduty_error([refusal], code=403)
        if refuse_over_limit(device):
            return Response(THROTTLED, status=429, headers={"Retry-After": "60"})
        key = data.get("dedup_key") or uuid.uuid4().hex
        dedup_key, actor = pagerduty_dedup_key(device, key), _device_actor(request, device)
        if data["event_action"] == "trigger":
            with transaction.atomic(savepoint=False):
                note_made_storable(self.trigger(device, actor, dedup_key, data), changed, actor)
        elif data["event_action"] == "acknowledge":
            open_alarm = lifecycle.open_alarm(dedup_key)
            if open_alarm is not None:
                lifecycle.acknowledge(open_alarm.pk, actor, "Acknowledged through PagerDuty events")
        else:
            lifecycle.clear(dedup_key, actor, "Resolved through PagerDuty events")
        body = {"status": "success", "message": "Event processed", "dedup_key": key}
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @staticmethod
    def trigger(device: Device, actor: Actor, dedup_key: str, data: dict) -> lifecycle.Outcome:
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
            dedup_key=dedup_key,
            title=payload["summary"][:255],
            message=payload["summary"] if len(payload["summary"]) > 255 else "",
            severity=PAGERDUTY_SEVERITY[payload["severity"]],
            labels=labels,
            details=details,
            device=device,
            actor=actor,
        )


HEARTBEAT_RESPONSES = {200: openapi.HeartbeatSerializer, **errors(403, 429)}
UNKNOWN_TOKEN = "unknown or disabled device token"


class HeartbeatView(APIView):
    """GET /v1/devices/heartbeat?token=… (or POST with the Bearer token): the device is alive.
    A device that was overdue gets its "device offline" alarm resolved."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        auth=[openapi.DEVICE_TOKEN_QUERY],
        responses={**HEARTBEAT_RESPONSES, **errors(e404="Unknown or disabled token.")},
    )
    def get(self, request):
        token = request.query_params.get("token", "")
        return self.beat(request, token) or error(UNKNOWN_TOKEN, 404)

    @extend_schema(
        auth=[openapi.BEARER], request=None, responses={**HEARTBEAT_RESPONSES, **errors(401)}
    )
    def post(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not token:
            return error("a device token is required: Authorization: Bearer <token>", 401,
                         **{"WWW-Authenticate": "Bearer"})  # fmt: skip
        return self.beat(request, token) or error(
            UNKNOWN_TOKEN, 401, **{"WWW-Authenticate": "Bearer"}
        )

    @staticmethod
    def beat(request, token: str) -> Response | None:
        """The answer to the device holding this token (None: no enabled device holds it)."""
        device, refusal = device_for(token, client_ip(request))
        if device is None:
            return None
        if refusal:
            return error(refusal, 403)
        if limited := refuse_over_limit(device):
            return limited
        return Response({"device": device.name, "last_seen_at": device.last_seen_at})


class SampleSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z_:][A-Za-z0-9_:]*\Z", max_length=200)
    value = serializers.FloatField(allow_null=False)
    labels = LabelsField(required=False, default=dict, validators=[validate_labels])
    time = serializers.CharField(required=False, max_length=64, help_text="Epoch seconds or ISO")

    def validate_value(self, value):
        if not math.isfinite(value):
            raise serializers.ValidationError("The value must be a finite number.")
        return value

    def validate_time(self, value):
        at = sample_time(value)
        if at is None:
            raise serializers.ValidationError(
                "Give epoch seconds or an ISO 8601 time with zone, within the years 1 to 9999."
            )
        if at > timezone.now() + metric_rules.MAX_AHEAD:
            raise serializers.ValidationError(
                f"The time is more than {metric_rules.MAX_AHEAD.total_seconds():.0f} s ahead of "
                "the server's clock."
            )
        return at


def sample_time(value: str) -> datetime | None:
    """Epoch seconds or an ISO 8601 time with zone, in UTC; None for anything else, or a time
    no datetime holds (inf, 1e20, an offset of 99 hours, before the year 1 in UTC)."""
    try:
        at = datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        try:
            at = parse_datetime(value)
        except ValueError:
            return None
    if at is None or at.tzinfo is None:
        return None
    try:
        return at.astimezone(UTC)
    except OverflowError:
        return None


class BatchSerializer(serializers.Serializer):
    metrics = SampleSerializer(many=True, max_length=MAX_BATCH, allow_empty=False)


class MetricsView(APIView):
    """POST /v1/metrics (one sample) and /v1/metrics/batch ({"metrics": [...]}), with the token
    of a metrics sender: samples are checked against the metric threshold rules."""

    batch = False
    parser_classes = PARSERS
    device_kind = Device.Kind.METRICS
    device_refused = "a metrics sender token is required"

    def get_serializer_class(self):
        return BatchSerializer if self.batch else SampleSerializer

    @extend_schema(
        auth=[openapi.BEARER],
        responses={200: openapi.MetricsResultSerializer, **errors(400, 401, 403, 413, 429, 503)},
    )
    def post(self, request):
        device = request.auth  # a metrics sender (the permission checked)
        data, changed = made_storable(request.data)
        serializer = self.get_serializer_class()(data=data)
        serializer.is_valid(raise_exception=True)
        if limited := refuse_over_limit(device):
            return limited
        if self.batch:
            rows = serializer.validated_data["metrics"]
            fixed = [within(changed, f"metrics[{n}]") for n in range(len(rows))]
        else:
            rows, fixed = [serializer.validated_data], [changed]
        now = timezone.now()
        samples = [
            metric_rules.Sample(row["name"], row["value"], row["labels"], row.get("time") or now,
                           made_storable=tuple(made))
            for row, made in zip(rows, fixed, strict=True)
        ]  # fmt: skip
        changes, failed = metric_rules.record_samples(samples, device)
        return Response({"accepted": len(samples), "changes": changes, "failed": failed})
