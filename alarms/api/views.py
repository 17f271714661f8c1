"""The alarm API: ingest (Yealink Action URL, JSON raise/clear) and alarm reads and actions."""

import uuid

import django_filters
from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core import client_address
from core.storable_text import explained, made_storable
from devices.auth import device_for
from devices.models import Device

from .. import lifecycle, ratelimit
from ..models import Alarm, AlarmEvent
from ..sources import heartbeats
from ..timeline import Actor, record, user_actor
from .errors import error, invalid_input
from .json_body import DepthLimitedJSONParser
from .openapi import (
    DEVICE_TOKEN_QUERY,
    AlarmActionSerializer,
    ClearedSerializer,
    RaisedSerializer,
    errors,
)
from .permissions import wrong_device
from .serializers import (
    AlarmDetailSerializer,
    AlarmSerializer,
    ClearSerializer,
    NoteSerializer,
    RaiseSerializer,
)

# What the API's views read a body with: as DRF would, but a JSON body nested too deeply is a 400.
PARSERS = [DepthLimitedJSONParser, FormParser, MultiPartParser]


def client_ip(request) -> str | None:
    return client_address.of_request(request)


def calling_device(request) -> Device | None:
    """The device whose token authenticated the request (None: a staff session)."""
    return request.auth if isinstance(request.auth, Device) else None


def actor_for(request) -> Actor:
    if device := calling_device(request):
        return Actor(f"device {device.name}", ip=client_ip(request))
    return user_actor(request.user, client_ip(request))


def scoped_dedup_key(device: Device | None, key: str) -> str:
    """Dedup keys are per device token (as PagerDuty's are per routing key); users share one."""
    return f"device:{device.pk}:{key}" if device else f"api:{key}"


def refuse_device(request) -> Response | None:
    """For the raise and clear API: the answer refusing the calling device, if it is refused."""
    device = calling_device(request)
    return refuse_over_limit(device) if device else None


def refuse_over_limit(device: Device) -> Response | None:
    """Mark the device seen (resolving its offline alarm if it had gone quiet) and count its
    request; a 429 answer once it is over its limit."""
    seen_before = device.last_seen_at
    device.mark_seen()
    heartbeats.heard(device, seen_before)
    if ratelimit.allow(f"device:{device.pk}", device.rate_limit_per_minute):
        return None
    return error("rate limit exceeded for this device", 429, **{"Retry-After": "60"})


def note_made_storable(outcome: lifecycle.Outcome, changed: list[str], actor: Actor) -> None:
    """Say on the alarm's timeline which of the fields sent were made storable, when the alarm
    took what was sent (not on a repeat, which stores none of it)."""
    if changed and outcome.changed:
        text = explained(changed)
        record(outcome.alarm, AlarmEvent.Kind.UPDATED, text, actor, made_storable=changed)


def raised(outcome: lifecycle.Outcome) -> Response:
    alarm = outcome.alarm
    body = {
        "alarm_id": str(alarm.pk),
        "status": alarm.status,
        "created": outcome.created,
        "occurrences": alarm.occurrences,
    }
    return Response(body, status=status.HTTP_201_CREATED if outcome.created else 200)


def press_emergency_key(
    device: Device, actor: Actor, *, key="emergency", title_prefix="", message="", labels=None
) -> lifecycle.Outcome:
    """The alarm a Yealink phone's emergency key raises (its Action URL, and the go-live test
    with a key, title prefix, message and labels of its own)."""
    return lifecycle.raise_alarm(
        source="yealink",
        dedup_key=f"device:{device.pk}:{key}",
        title=f"{title_prefix}Emergency key pressed: {device.person or device.room}",
        message=message or f"Emergency key on {device.name}.",
        severity="critical",
        labels={"device": device.name, **(labels or {})},
        device=device,
        actor=actor,
    )


UNKNOWN, UNMAPPED = "Unknown or disabled token.", "The device is mapped to no room or person."


class YealinkAlarmView(APIView):
    """GET /v1/yealink/alarm?token=…: a Yealink Action URL can send neither headers nor body."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        auth=[DEVICE_TOKEN_QUERY],
        parameters=[
            OpenApiParameter("mac", description="The phone's MAC ($mac), if the device has one.")
        ],
        responses={200: RaisedSerializer, **errors(403, 429, 503, e404=UNKNOWN, e409=UNMAPPED)},
    )
    def get(self, request):
        params = request.query_params
        return press(params.get("token", ""), client_ip(request), params.get("mac"))


def press(token: str, ip: str | None, mac: str | None) -> Response:
    """The answer to a phone's emergency key (the Yealink view's and the device fast path's)."""
    device, refusal = device_for(token, ip, mac)
    if device is None:
        return error("unknown or disabled device token", 404)
    if refusal := refusal or wrong_device(device, YealinkAlarmView):
        return error(refusal, 403)
    if device.mapping_problem:
        return error(device.mapping_problem, 409)
    if limited := refuse_over_limit(device):
        return limited
    response = raised(press_emergency_key(device, Actor(f"device {device.name}", ip=ip)))
    response.status_code = 200
    return response


class RaiseView(APIView):
    """POST /v1/alarms/raise: open an alarm, or add an occurrence to the open one."""

    parser_classes = PARSERS
    user_permission = "alarms.add_alarm"

    @extend_schema(
        request=RaiseSerializer,
        responses={201: RaisedSerializer, 200: RaisedSerializer, **errors(400, 401, 403, 429, 503)},
    )
    def post(self, request):
        return raise_from(request.data, calling_device(request), actor_for(request))


def raise_from(data, device: Device | None, actor: Actor) -> Response:
    """The answer to a JSON raise, by a device or a user allowed to raise (the raise view's
    and the device fast path's)."""
    data, changed = made_storable(data)
    serializer = RaiseSerializer(data=data)
    if not serializer.is_valid():
        return Response(invalid_input(serializer.errors), status=400)
    if device and (limited := refuse_over_limit(device)):
        return limited
    data = serializer.validated_data
    with transaction.atomic(savepoint=False):  # the fast path's group gives it a savepoint
        outcome = lifecycle.raise_alarm(
            source=data["source"],
            dedup_key=scoped_dedup_key(device, data.get("dedup_key") or str(uuid.uuid4())),
            title=data["title"],
            message=data.get("message", ""),
            severity=data["severity"],
            labels=data["labels"],
            device=device,
            actor=actor,
        )
        note_made_storable(outcome, changed, actor)
    return raised(outcome)


def raise_by_device(token: str, ip: str | None, data) -> Response | None:
    """A JSON raise with this Bearer token, if it is a device's (None: it is not, and the
    request goes the API's whole way: it may be a user's API token)."""
    device, refusal = device_for(token, ip)
    if device is None:
        return None
    if refusal := refusal or wrong_device(device, RaiseView):
        return error(refusal, 403)
    return raise_from(data, device, Actor(f"device {device.name}", ip=ip))


class ClearView(APIView):
    """POST /v1/alarms/clear: resolve the open alarm with this dedup key."""

    parser_classes = PARSERS
    user_permission = "alarms.resolve_alarm"

    @extend_schema(
        request=ClearSerializer,
        responses={
            200: ClearedSerializer,
            **errors(400, 401, 403, 404, 429, 503, e404="No open alarm with this dedup_key."),
        },
    )
    def post(self, request):
        data, changed = made_storable(request.data)
        serializer = ClearSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        if refused := refuse_device(request):
            return refused
        key = scoped_dedup_key(calling_device(request), serializer.validated_data["dedup_key"])
        note, actor = serializer.validated_data.get("message", ""), actor_for(request)
        with transaction.atomic(savepoint=False):
            outcome = lifecycle.clear(key, actor, note)
            if outcome is None:
                return error("no open alarm with this dedup_key", 404)
            note_made_storable(outcome, changed, actor)
        return Response({"alarm_id": str(outcome.alarm.pk), "status": outcome.alarm.status})


# The answer to acknowledge, resolve and cancel.
ALARM_ACTION = extend_schema(
    request=NoteSerializer,
    responses={
        200: AlarmActionSerializer,
        **errors(400, 401, 403, 404, 429, e409="The alarm is closed."),
    },
)


class AlarmPagination(LimitOffsetPagination):
    max_limit = 1000  # a larger ?limit= is taken as this (25 digits overflow the database)


class AlarmFilter(django_filters.FilterSet):
    site = django_filters.CharFilter(field_name="site__name")

    class Meta:
        model = Alarm
        fields = ["status", "severity", "source", "site"]


@extend_schema_view(
    list=extend_schema(responses={200: AlarmSerializer(many=True), **errors(400, 401, 403)}),
    retrieve=extend_schema(responses={200: AlarmDetailSerializer, **errors(401, 403, 404)}),
)
class AlarmViewSet(viewsets.ReadOnlyModelViewSet):
    """Alarms (a device sees only its own) and the acknowledge/resolve/cancel actions."""

    serializer_class = AlarmSerializer
    filterset_class = AlarmFilter
    pagination_class = AlarmPagination
    parser_classes = PARSERS
    user_permission = {
        "list": "alarms.view_alarm",
        "retrieve": "alarms.view_alarm",
        "acknowledge": "alarms.acknowledge_alarm",
        "resolve": "alarms.resolve_alarm",
        "cancel": "alarms.cancel_alarm",
    }
    # A device sees its own alarms and may resolve them, as its clear would (the queryset
    # holds only its own); acknowledging and cancelling are for people.
    device_actions = {"list", "retrieve", "resolve"}

    def get_queryset(self):
        alarms = Alarm.objects.select_related("site", "room", "person", "device", "policy")
        if isinstance(self.request.auth, Device):
            alarms = alarms.filter(device=self.request.auth)
        if self.action == "retrieve":
            alarms = alarms.prefetch_related("events")
        return alarms

    def get_serializer_class(self):
        return AlarmDetailSerializer if self.action == "retrieve" else AlarmSerializer

    def _act(self, request, transition):
        caller = (
            f"device:{request.auth.pk}" if calling_device(request) else f"user:{request.user.pk}"
        )
        if not ratelimit.allow(f"ack:{caller}", settings.ACK_RATE_PER_MINUTE):
            return error(
                "too many alarm actions; try again in a minute", 429, **{"Retry-After": "60"}
            )
        alarm = self.get_object()
        data, changed = made_storable(request.data)
        serializer = NoteSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        actor = actor_for(request)
        try:
            with transaction.atomic():
                outcome = transition(alarm.pk, actor, serializer.validated_data["note"])
                note_made_storable(outcome, changed, actor)
        except lifecycle.AlarmClosed as exc:
            return error(f"alarm is already {exc.alarm.status}", 409)
        body = AlarmSerializer(outcome.alarm).data | {"changed": outcome.changed}
        if not outcome.changed and outcome.alarm.status == "acknowledged":
            body["detail"] = (
                f"already acknowledged by {outcome.alarm.acknowledged_by} "
                f"at {outcome.alarm.acknowledged_at.isoformat()}"
            )
        return Response(body)

    @ALARM_ACTION
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        return self._act(request, lifecycle.acknowledge)

    @ALARM_ACTION
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        return self._act(request, lifecycle.resolve)

    @ALARM_ACTION
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(request, lifecycle.cancel)
