"""POST /v1/admin/seed: load a seed document (YAML or JSON) over the API, for operators."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.roles import may_configure
from alarms.api.errors import error
from alarms.api.openapi import errors

from . import seed

TRUE = {"1", "true", "yes", "on"}


class MayConfigure(BasePermission):
    message = "Only operators may change the configuration."

    def has_permission(self, request, view):
        return may_configure(request.user)


class SeedReportSerializer(serializers.Serializer):
    """The answer to a load (`seed.Report.as_dict`), for the API's schema."""

    dry_run = serializers.BooleanField()
    changed = serializers.BooleanField()
    counts = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="Per kind: how many were created, updated and left unchanged.",
    )
    objects = serializers.DictField(
        child=serializers.DictField(child=serializers.ListField(child=serializers.CharField())),
        help_text="Per kind: the names created, updated and left unchanged.",
    )
    device_tokens = serializers.DictField(
        child=serializers.CharField(), help_text="New devices' tokens by name, shown only here."
    )


class SeedView(APIView):
    """The body is the seed file (application/yaml, text/yaml or application/json);
    ?dry_run=1 checks and reports without saving. 200 with the report, 400 naming the entry."""

    permission_classes = [MayConfigure]

    @extend_schema(
        request={"application/yaml": OpenApiTypes.STR, "application/json": OpenApiTypes.OBJECT},
        parameters=[OpenApiParameter("dry_run", bool, description="Check only; save nothing.")],
        responses={
            200: SeedReportSerializer,
            **errors(
                401,
                403,
                413,
                e400="The entry and field at fault; nothing was changed.",
                e415="Not YAML or JSON.",
            ),
        },
    )
    def post(self, request):
        media_type = request.content_type.split(";")[0].strip().lower()
        if media_type not in seed.YAML_TYPES | seed.JSON_TYPES:
            return error("send the seed as application/yaml, text/yaml or application/json", 415)
        # request.body enforces DATA_UPLOAD_MAX_MEMORY_SIZE (413 above it).
        try:
            text = request.body.decode(request.encoding or "utf-8")
        except (UnicodeDecodeError, LookupError):
            return error("the body is not UTF-8 text", 400)
        dry_run = request.query_params.get("dry_run", "").lower() in TRUE
        try:
            report = seed.load(seed.parse(text, media_type), dry_run=dry_run)
        except seed.SeedError as exc:
            return error(f"{exc}; nothing was changed", 400)
        # It may carry new device tokens: never kept by a cache.
        return Response(report.as_dict(), headers={"Cache-Control": "no-store"})
