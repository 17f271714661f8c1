"""The views of the tools people already run: Prometheus Alertmanager's webhook, PagerDuty's
Events API v2 and metric samples; plus device heartbeats. Each integration is a Device of its
own kind with its own token; its rules are its source's (alarms/sources/)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from devices.models import Device

from ..sources import alertmanager, devices, metric_samples, pagerduty
from . import openapi
from .errors import error, refused
from .openapi import errors
from .views import PARSERS, client_ip


class AlertmanagerView(APIView):
    """POST /v1/integrations/alertmanager: one alarm per alert fingerprint."""

    parser_classes = PARSERS
    device_kind = Device.Kind.ALERTMANAGER

    @extend_schema(
        auth=[openapi.BEARER],
        request=alertmanager.AlertmanagerSerializer,
        responses={
            200: openapi.AlertmanagerResultSerializer,
            **errors(400, 401, 403, 413, 429, 503),
        },
    )
    def post(self, request):
        device = request.auth  # an Alertmanager integration (the permission checked)
        by = devices.integration_actor(device, client_ip(request))
        return Response({"alerts": alertmanager.receive(request.data, device, by)})


class PagerDutyEventsView(APIView):
    """POST /v2/enqueue (and /v1/integrations/pagerduty): the routing key is the token."""

    parser_classes = PARSERS
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        auth=[],  # the routing key in the body is the token
        tags=["integrations"],
        request=pagerduty.EventSerializer,
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
            return refused(pagerduty.invalid([str(exc.detail)]))
        key = pagerduty.receive(body, client_ip(request))
        body = {"status": "success", "message": "Event processed", "dedup_key": key}
        return Response(body, status=status.HTTP_202_ACCEPTED)


HEARTBEAT_RESPONSES = {200: openapi.HeartbeatSerializer, **errors(403, 429)}
BEARER_REQUIRED = {"WWW-Authenticate": "Bearer"}


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
        device = devices.heartbeat(request.query_params.get("token", ""), client_ip(request))
        return self.heard(device) if device else error(devices.UNKNOWN, 404)

    @extend_schema(
        auth=[openapi.BEARER], request=None, responses={**HEARTBEAT_RESPONSES, **errors(401)}
    )
    def post(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not token:
            return error("a device token is required: Authorization: Bearer <token>", 401,
                         **BEARER_REQUIRED)  # fmt: skip
        device = devices.heartbeat(token, client_ip(request))
        return self.heard(device) if device else error(devices.UNKNOWN, 401, **BEARER_REQUIRED)

    @staticmethod
    def heard(device: Device) -> Response:
        return Response({"device": device.name, "last_seen_at": device.last_seen_at})


class MetricsView(APIView):
    """POST /v1/metrics (one sample) and /v1/metrics/batch ({"metrics": [...]}), with the token
    of a metrics sender: samples are checked against the metric threshold rules."""

    batch = False
    parser_classes = PARSERS
    device_kind = Device.Kind.METRICS

    def get_serializer_class(self):
        return metric_samples.BatchSerializer if self.batch else metric_samples.SampleSerializer

    @extend_schema(
        auth=[openapi.BEARER],
        responses={200: openapi.MetricsResultSerializer, **errors(400, 401, 403, 413, 429, 503)},
    )
    def post(self, request):
        device = request.auth  # a metrics sender (the permission checked)
        return Response(metric_samples.receive(request.data, device, self.batch))
