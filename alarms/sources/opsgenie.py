"""Opsgenie's Alert API and heartbeat pings, so a sender moves to us by changing its base URL
and its key: `POST /v2/alerts` opens an alarm (its `alias` the dedup key: a repeat while open
counts an occurrence, as Opsgenie counts it), `…/close` and `…/acknowledge` act on it by alias
or id, `/v2/heartbeats/{name}/ping` keeps a watched device alive. The key comes as
`Authorization: GenieKey <key>` and is an Opsgenie integration's token. Answers and refusals
are Opsgenie's own shapes (202 with a `requestId`; `message`, `errors`, `took`), which its
clients read."""

import json
import time
import uuid

import redis
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

from core import redis_client
from core.storable_text import made_storable
from devices.auth import device_for
from devices.models import Device
from oncall.models import Schedule, Team

from .. import lifecycle
from ..models import Alarm
from ..timeline import Actor, note_made_storable
from . import devices
from .refusal import Refused, field_errors

PRIORITY = {"P1": "critical", "P2": "high", "P3": "warning", "P4": "info", "P5": "info"}
IDENTIFIER_TYPES = ("id", "alias")
UNPROCESSABLE = "Request body is not processable. Please check the errors."
THROTTLED = "You are making too many requests! To avoid errors, we recommend you limit requests."
# How long `GET /v2/alerts/requests/{id}` can tell what a request did (Opsgenie keeps them
# for a while too); kept in Redis only: lost with it, the alarm itself never is.
REQUEST_KEPT_SECONDS = 3 * 24 * 3600
RESPONDER_TYPES = ("team", "user", "escalation", "schedule")


class ResponderSerializer(serializers.Serializer):
    type = serializers.ChoiceField(RESPONDER_TYPES)
    id = serializers.CharField(required=False, max_length=200)
    name = serializers.CharField(required=False, max_length=200)
    username = serializers.CharField(required=False, max_length=200)

    def validate(self, data):
        if not (data.get("id") or data.get("name") or data.get("username")):
            raise serializers.ValidationError("Responder must have an id, name or username.")
        return data


class CreateSerializer(serializers.Serializer):
    """Opsgenie's create-alert request, with its documented limits."""

    message = serializers.CharField(max_length=10000)  # longer than 130 is cut, as Opsgenie does
    alias = serializers.CharField(required=False, max_length=512)
    description = serializers.CharField(required=False, allow_blank=True, max_length=15000)
    responders = ResponderSerializer(many=True, required=False, max_length=50)
    visibleTo = ResponderSerializer(many=True, required=False, max_length=50)
    actions = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=10
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=20
    )
    details = serializers.DictField(
        child=serializers.CharField(max_length=8000, allow_blank=True), required=False
    )
    entity = serializers.CharField(required=False, allow_blank=True, max_length=512)
    source = serializers.CharField(required=False, allow_blank=True, max_length=100)
    priority = serializers.ChoiceField(list(PRIORITY), required=False, default="P3")
    user = serializers.CharField(required=False, allow_blank=True, max_length=100)
    note = serializers.CharField(required=False, allow_blank=True, max_length=25000)


class ActionSerializer(serializers.Serializer):
    user = serializers.CharField(required=False, allow_blank=True, max_length=100)
    source = serializers.CharField(required=False, allow_blank=True, max_length=100)
    note = serializers.CharField(required=False, allow_blank=True, max_length=25000)


class Request:
    """One API request: its id and clock, for the `requestId` and `took` of every answer."""

    def __init__(self):
        self.id = str(uuid.uuid4())
        self.started = time.monotonic()

    def body(self, **fields) -> dict:
        took = round(time.monotonic() - self.started, 3)
        return {**fields, "took": took, "requestId": self.id}

    def refused(self, status: int, message: str, errors: dict | None = None, **headers):
        body = self.body(message=message, **({"errors": errors} if errors else {}))
        return Refused(status, message, body=body, **headers)

    def accepted(self) -> dict:
        return self.body(result="Request will be processed")


def genie_key(header: str) -> str:
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "geniekey" else ""


def integration(request: Request, authorization: str, ip: str | None) -> Device:
    """The Opsgenie integration whose key came in the Authorization header, within its rate
    limit (and marked seen)."""
    device, refusal = device_for(genie_key(authorization), ip)
    if device is None:
        raise request.refused(401, "Could not authenticate", **{"WWW-Authenticate": "GenieKey"})
    if refusal or device.kind != Device.Kind.OPSGENIE:
        raise request.refused(403, refusal or "This key is not an Opsgenie integration's key.")
    if devices.over_limit(device):
        raise request.refused(429, THROTTLED, **{"Retry-After": "60"})
    return device


def validated(request: Request, serializer_class, body) -> dict:
    if not isinstance(body, dict):
        raise request.refused(422, UNPROCESSABLE, {"body": "The body must be a JSON object."})
    serializer = serializer_class(data=body)
    if not serializer.is_valid():
        raise request.refused(422, UNPROCESSABLE, flat_errors(serializer.errors))
    return serializer.validated_data


def flat_errors(detail) -> dict:
    """One message per field path ("responders[0]"), as Opsgenie names them."""
    found: dict[str, str] = {}
    for path, message in field_errors(detail):
        name = path or "body"
        found[name] = f"{found[name]} {message}" if name in found else message
    return found


def dedup_key(device: Device, alias: str) -> str:
    return devices.scoped_dedup_key(device, f"opsgenie:{alias}")


def create(body, authorization: str, ip: str | None) -> dict:
    """A create-alert request: stored (an alarm, or an occurrence on the open one with its
    alias) before the 202 that says so."""
    request = Request()
    device = integration(request, authorization, ip)
    data, changed = made_storable(body)
    data = validated(request, CreateSerializer, data)
    by = actor(device, ip, data)
    with transaction.atomic(savepoint=False):
        outcome = raise_from(device, by, data)
        note_made_storable(outcome, changed, by)
    remember(request, device, "Create", outcome.alarm, data.get("alias"), "Created alert")
    return request.accepted()


def raise_from(device: Device, by: Actor, data: dict, labels=None) -> lifecycle.Outcome:
    """A validated create request (the go-live test's too, with labels of its own)."""
    labels = {"priority": data["priority"], **(labels or {})}
    if data.get("tags"):
        labels["tags"] = ",".join(data["tags"])
    for wire, label in (("entity", "entity"), ("source", "origin")):
        if data.get(wire):
            labels[label] = data[wire]
    responders, policy = routed_to(data.get("responders", []))
    labels.update(responders)
    details = {
        name: data[name]
        for name in ("details", "responders", "visibleTo", "actions", "user", "note")
        if data.get(name)
    }
    message = data["message"]
    return lifecycle.raise_alarm(
        source="opsgenie",
        dedup_key=dedup_key(device, data.get("alias") or str(uuid.uuid4())),
        title=message[:130],
        message=data.get("description") or (message if len(message) > 130 else ""),
        severity=PRIORITY[data["priority"]],
        labels=labels,
        details=details,
        device=device,
        policy=policy,
        actor=by,
    )


def routed_to(responders: list[dict]) -> tuple[dict, object]:
    """The labels the responders give (`team`, `schedule`, `user`, `escalation`: comma-joined
    names, for routing rules to match) and the policy of the first team named (or of a named
    schedule's team) that has one: Opsgenie's "notify this team" becomes "escalate by our team
    of that name's policy". With none, the routing rules decide as for any alarm."""
    names = {kind: [] for kind in RESPONDER_TYPES}
    for responder in responders:
        name = responder.get("name") or responder.get("username") or responder.get("id")
        names[responder["type"]].append(name)
    labels = {kind: ",".join(found) for kind, found in names.items() if found}
    teams = {team.name: team for team in Team.objects.filter(name__in=names["team"])}
    for schedule in Schedule.objects.filter(name__in=names["schedule"], team__isnull=False):
        teams.setdefault(schedule.name, schedule.team)
    for name in names["team"] + names["schedule"]:
        if name in teams and (policy := team_policy(teams[name])):
            return labels, policy
    return labels, None


def team_policy(team: Team):
    """The team's default policy, else the first of the policies it owns."""
    return team.default_policy or team.policies.order_by("name").first()


def act(body, authorization: str, ip: str | None, identifier: str, action: str,
        identifier_type: str) -> dict:  # fmt: skip
    """Close or acknowledge the open alarm with this alias or id. Answered 202 when nothing
    open matches too, as Opsgenie answers (its request's status then says so)."""
    request = Request()
    device = integration(request, authorization, ip)
    if identifier_type not in IDENTIFIER_TYPES:
        raise request.refused(
            422,
            UNPROCESSABLE,
            {"identifierType": "Must be one of: id, alias (tiny ids are not kept)."},
        )
    data, changed = made_storable(body or {})
    data = validated(request, ActionSerializer, data)
    by = actor(device, ip, data)
    alarm = target(device, identifier, identifier_type)
    note = data.get("note") or f"{action.capitalize()}d through the Opsgenie API"
    status = "Alert does not exist"
    if alarm is not None and action == "close":
        lifecycle.resolve(alarm.pk, by, note)
        status = "Closed alert"
    elif alarm is not None:
        try:
            lifecycle.acknowledge(alarm.pk, by, note)
            status = "Acknowledged alert"
        except lifecycle.AlarmClosed:
            status = "Alert is already closed"
    label = "Close" if action == "close" else "Acknowledge"
    alias = identifier if identifier_type == "alias" else None
    remember(request, device, label, alarm, alias, status)
    return request.accepted()


def target(device: Device, identifier: str, identifier_type: str) -> Alarm | None:
    """This integration's open alarm with this alias, or its alarm with this id."""
    if identifier_type == "alias":
        return lifecycle.open_alarm(dedup_key(device, identifier))
    try:
        alarm_id = uuid.UUID(identifier)
    except ValueError:
        return None
    return Alarm.objects.filter(pk=alarm_id, device=device).first()


def actor(device: Device, ip: str | None, data: dict) -> Actor:
    """The integration, and the user the sender names ("Opsgenie nagios (user ops@x)")."""
    by = devices.integration_actor(device, ip)
    if data.get("user"):
        return Actor(f"{by.name} (user {data['user']})", ip=ip)
    return by


def remember(request: Request, device: Device, action: str, alarm: Alarm | None,
             alias: str | None, status: str) -> None:  # fmt: skip
    """What this request did, for `GET /v2/alerts/requests/{requestId}` by the same
    integration; best effort."""
    done = alarm is not None and status != "Alert is already closed"
    record = {
        "integrationId": str(device.pk),
        "success": done,
        "isSuccess": done,
        "action": action,
        "processedAt": timezone.now().isoformat(),
        "status": status,
        "alertId": str(alarm.pk) if alarm else "",
        "alias": alias or "",
    }
    key = request_key(request.id)
    try:
        redis_client.client().set(key, json.dumps(record), ex=REQUEST_KEPT_SECONDS)
    except redis.RedisError:
        pass  # the answer and the alarm stand; only the status lookup will not know it


def request_status(request_id: str, authorization: str, ip: str | None) -> dict:
    """What an earlier request did (its alert's id, for senders that close by id)."""
    request = Request()
    device = integration(request, authorization, ip)
    try:
        saved = redis_client.client().get(request_key(request_id))
    except redis.RedisError:
        saved = None
    data = json.loads(saved) if saved else {}
    if data.get("integrationId") != str(device.pk):  # another integration's is not known here
        raise request.refused(404, f"Request with id [{request_id}] does not exist.")
    return request.body(data=data)


def request_key(request_id: str) -> str:
    return f"opsgenie:request:{request_id}"


def ping(name: str, authorization: str, ip: str | None) -> dict:
    """A heartbeat ping: the Opsgenie device of this name (with a heartbeat interval) heard
    from. Any Opsgenie integration's key may ping any Opsgenie heartbeat, as one Opsgenie
    account's key can; no other device can be kept alive this way."""
    request = Request()
    integration(request, authorization, ip)
    heartbeat = Device.objects.filter(
        name=name, kind=Device.Kind.OPSGENIE, enabled=True, heartbeat_interval_seconds__isnull=False
    ).first()
    if heartbeat is None:
        raise request.refused(404, f"Heartbeat with name [{name}] does not exist.")
    if devices.over_limit(heartbeat):
        raise request.refused(429, THROTTLED, **{"Retry-After": "60"})
    return request.body(result="PONG - Heartbeat received")
