"""Opsgenie's own paths (`/v2/alerts…`, `/v2/heartbeats/{name}/ping`): a sender moved from
Opsgenie changes only its base URL and its key. What they do is the source's
(alarms/sources/opsgenie.py)."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from ..sources import opsgenie
from ..sources.opsgenie import UNPROCESSABLE
from . import openapi
from .openapi import OpsgenieErrorSerializer, errors
from .views import PARSERS, client_ip

GENIE_KEY = {"genieKey": []}


def opsgenie_errors(*codes: int) -> dict:
    return {code: OpenApiResponse(OpsgenieErrorSerializer) for code in codes}


ACCEPTED = {
    202: openapi.OpsgenieAcceptedSerializer,
    **opsgenie_errors(401, 403, 422, 429),
    **errors(413, 503),
}


class OpsgenieView(APIView):
    parser_classes = PARSERS
    authentication_classes = []  # the GenieKey is checked by the source
    permission_classes = [AllowAny]

    def body(self, request):
        """The JSON body; unreadable, it is refused as Opsgenie refuses it (422)."""
        try:
            return request.data
        except ParseError as exc:
            body = {"body": str(exc.detail)}
            raise opsgenie.Request().refused(422, UNPROCESSABLE, body) from None

    def key(self, request) -> str:
        return request.headers.get("Authorization", "")


class AlertsView(OpsgenieView):
    """POST /v2/alerts: create an alert (`alias` is the dedup key)."""

    @extend_schema(
        auth=[GENIE_KEY], tags=["integrations"], request=opsgenie.CreateSerializer,
        responses=ACCEPTED,
    )  # fmt: skip
    def post(self, request):
        body = opsgenie.create(self.body(request), self.key(request), client_ip(request))
        return Response(body, status=status.HTTP_202_ACCEPTED)


IDENTIFIER_TYPE = OpenApiParameter(
    "identifierType", enum=list(opsgenie.IDENTIFIER_TYPES), default="id",
    description="What the identifier in the path is: the alarm's id or the alert's alias.",
)  # fmt: skip


class AlertActionView(OpsgenieView):
    """POST /v2/alerts/{identifier}/close and …/acknowledge, by id or alias."""

    action = "close"

    @extend_schema(
        auth=[GENIE_KEY], tags=["integrations"], request=opsgenie.ActionSerializer,
        parameters=[IDENTIFIER_TYPE], responses=ACCEPTED,
    )  # fmt: skip
    def post(self, request, identifier):
        body = opsgenie.act(
            self.body(request), self.key(request), client_ip(request), identifier, self.action,
            request.query_params.get("identifierType", "id"),
        )  # fmt: skip
        return Response(body, status=status.HTTP_202_ACCEPTED)


class RequestStatusView(OpsgenieView):
    """GET /v2/alerts/requests/{request_id}: what a request did (the alert's id)."""

    @extend_schema(
        auth=[GENIE_KEY], tags=["integrations"],
        responses={200: openapi.OpsgenieRequestStatusSerializer,
                   **opsgenie_errors(401, 403, 404, 429)},
    )  # fmt: skip
    def get(self, request, request_id):
        return Response(opsgenie.request_status(request_id, self.key(request), client_ip(request)))


class HeartbeatPingView(OpsgenieView):
    """GET, POST or HEAD /v2/heartbeats/{name}/ping: the heartbeat of this name is alive."""

    @extend_schema(
        auth=[GENIE_KEY], tags=["integrations"], request=None,
        responses={202: openapi.OpsgenieAcceptedSerializer,
                   **opsgenie_errors(401, 403, 404, 429), **errors(503)},
    )  # fmt: skip
    def get(self, request, name):
        body = opsgenie.ping(name, self.key(request), client_ip(request))
        return Response(body, status=status.HTTP_202_ACCEPTED)

    post = get
