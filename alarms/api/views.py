"""The alarm API: the Yealink Action URL and the JSON raise and clear (their sources decide:
alarms/sources/), and alarm reads and actions."""

import django_filters
from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core import client_address, rate_limits
from core.storable_text import made_storable
from devices.models import Device

from .. import lifecycle
from ..models import Alarm
from ..sources import devices, json_api
from ..sources.json_api import ClearSerializer, RaiseSerializer
from ..timeline import Actor, note_made_storable, user_actor
from .errors import error
from .json_body import DepthLimitedJSONParser
from .openapi import (
    DEVICE_TOKEN_QUERY,
    AlarmActionSerializer,
    ClearedSerializer,
    RaisedSerializer,
    errors,
)
from .serializers import (
    AlarmDetailSerializer,
    AlarmSerializer,
    ClaimRequestSerializer,
    NoteSerializer,
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
        return devices.actor(device, client_ip(request))
    return user_actor(request.user, client_ip(request))


def raised_body(outcome: lifecycle.Outcome) -> dict:
    """The answer to a raise (and a press), here and on the fast path."""
    alarm = outcome.alarm
    return {
        "alarm_id": str(alarm.pk),
        "status": alarm.status,
        "created": outcome.created,
        "occurrences": alarm.occurrences,
    }


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
        outcome = devices.press(params.get("token", ""), client_ip(request), params.get("mac"))
        return Response(raised_body(outcome))


class RaiseView(APIView):
    """POST /v1/alarms/raise: open an alarm, or add an occurrence to the open one."""

    parser_classes = PARSERS
    user_permission = "alarms.add_alarm"

    @extend_schema(
        request=RaiseSerializer,
        responses={201: RaisedSerializer, 200: RaisedSerializer, **errors(400, 401, 403, 429, 503)},
    )
    def post(self, request):
        outcome = json_api.raise_alarm(request.data, calling_device(request), actor_for(request))
        return Response(raised_body(outcome), status=201 if outcome.created else 200)


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
        outcome = json_api.clear(request.data, calling_device(request), actor_for(request))
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
        "claim": "alarms.acknowledge_alarm",
        "resolve": "alarms.resolve_alarm",
        "cancel": "alarms.cancel_alarm",
    }
    # A device sees its own alarms and may resolve them, as its clear would (the queryset
    # holds only its own); acknowledging and cancelling are for people.
    device_actions = {"list", "retrieve", "resolve"}

    def get_queryset(self):
        alarms = Alarm.objects.select_related("site", "room", "person", "device", "policy")
        alarms = alarms.prefetch_related("claims")
        if isinstance(self.request.auth, Device):
            alarms = alarms.filter(device=self.request.auth)
        if self.action == "retrieve":
            alarms = alarms.prefetch_related("events")
        return alarms

    def get_serializer_class(self):
        return AlarmDetailSerializer if self.action == "retrieve" else AlarmSerializer

    def _act(self, request, transition, request_serializer=NoteSerializer):
        caller = (
            f"device:{request.auth.pk}" if calling_device(request) else f"user:{request.user.pk}"
        )
        if not rate_limits.allow(f"ack:{caller}", settings.ACK_RATE_PER_MINUTE):
            return error(
                "too many alarm actions; try again in a minute", 429, **{"Retry-After": "60"}
            )
        alarm = self.get_object()
        data, changed = made_storable(request.data)
        serializer = request_serializer(data=data)
        serializer.is_valid(raise_exception=True)
        actor = actor_for(request)
        try:
            with transaction.atomic():
                outcome = transition(alarm.pk, actor, **serializer.validated_data)
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

    @extend_schema(
        request=ClaimRequestSerializer,
        responses={200: AlarmActionSerializer, **errors(400, 401, 403, 404, 429,
                                                        e409="The alarm is closed.")},
        description="On my way, in `eta_minutes` when given: the first claim acknowledges the "
        "alarm; later ones are kept beside it (`claims`), and the board counts down to each ETA.",
    )  # fmt: skip
    @action(detail=True, methods=["post"])
    def claim(self, request, pk=None):
        def claim(alarm_id, actor, note, eta_minutes):
            return lifecycle.claim(alarm_id, actor, eta_minutes)

        return self._act(request, claim, ClaimRequestSerializer)

    @ALARM_ACTION
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        return self._act(request, lifecycle.resolve)

    @ALARM_ACTION
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(request, lifecycle.cancel)
