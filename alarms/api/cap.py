"""POST /v1/cap: public warnings as OASIS CAP 1.2 <alert> documents, with the token of a CAP
device (which opens this endpoint only). What they do is the source's (alarms/sources/cap.py)."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from devices.models import Device

from ..sources import cap, devices
from ..sources.refusal import Refused
from . import openapi
from .openapi import errors
from .views import client_ip


class CapXmlParser(BaseParser):
    """The document as the bytes sent, for the source to read safely; at most CAP_MAX_BYTES
    (read no further: Django's own limit applies only to `request.body`)."""

    media_type = "application/xml"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.CAP_MAX_BYTES
        body = stream.read(limit + 1) if stream else b""
        if len(body) > limit:
            raise Refused(413, f"the document is larger than {limit} bytes")
        return body


class CapPlusXmlParser(CapXmlParser):
    media_type = "application/cap+xml"


class TextXmlParser(CapXmlParser):
    media_type = "text/xml"


class CapResultSerializer(serializers.Serializer):
    identifier = serializers.CharField()
    sender = serializers.CharField()
    msgType = serializers.CharField()
    status = serializers.CharField()
    action = serializers.CharField(
        help_text="raised, updated, unchanged, cleared, repeat: nothing changed, ignored: …"
    )
    alarm_ids = serializers.ListField(child=serializers.UUIDField())


class CapView(APIView):
    """POST /v1/cap: one CAP 1.2 alert; Alert raises, Update updates, Cancel clears."""

    parser_classes = [CapXmlParser, CapPlusXmlParser, TextXmlParser]
    device_kind = Device.Kind.CAP

    @extend_schema(
        auth=[openapi.BEARER],
        tags=["integrations"],
        request={
            media: {"type": "string"}
            for media in ("application/xml", "application/cap+xml", "text/xml")
        },  # fmt: skip
        responses={
            200: CapResultSerializer,
            **errors(
                401,
                403,
                413,
                429,
                503,
                e400="Not well-formed, a DTD or entities, or "
                "not valid against the CAP 1.2 schema: `path` and `reason` say where.",
                e415="Not an XML content type.",
            ),
        },  # fmt: skip
    )
    def post(self, request):
        device = request.auth  # a CAP device (the permission checked)
        by = devices.integration_actor(device, client_ip(request))
        return Response(cap.receive(request.data, device, by))
