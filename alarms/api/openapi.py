"""What the OpenAPI schema (/v1/schema) says beyond what the views show by themselves: the
answers views build by hand, the error answers, and how Bearer tokens are described."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from ..models import Status
from .serializers import AlarmSerializer

# A device's token in the query string, where a Yealink Action URL or a plain GET must put it.
# (The scheme itself is declared in SPECTACULAR_SETTINGS: no authentication class reads it.)
DEVICE_TOKEN_QUERY = {"deviceTokenQuery": []}
BEARER = {"bearerAuth": []}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A device's token (issued in the admin, shown once) or a user's API "
            "token, which acts with that user's role.",
        }


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What was wrong, for a person to read.")

    def get_fields(self):
        fields = super().get_fields()
        # "fields" is a Serializer attribute: declared here under its wire name.
        fields["fields"] = serializers.DictField(
            required=False, help_text="Invalid input only: the problems of each field."
        )
        return fields


ERRORS = {
    400: "Invalid input; `fields` names the problem of each field.",
    401: "No credentials, or a token that is unknown, revoked or disabled.",
    403: "These credentials may not do this (role, token kind, address or phone not allowed).",
    404: "Not found.",
    409: "Conflict.",
    413: "The body is larger than the server accepts.",
    429: "Over the rate limit; `Retry-After` says when to try again.",
    503: "The alarm store could not take it and nothing was stored: send it again after "
    "`Retry-After` seconds.",
}


def errors(*codes: int, **texts: str) -> dict:
    """Error answers for a schema's `responses`: these codes, and those `texts` describe
    (e409="…")."""
    described = {int(name.removeprefix("e")): text for name, text in texts.items()}
    return {
        code: OpenApiResponse(ErrorSerializer, description=described.get(code) or ERRORS[code])
        for code in sorted({*codes, *described})
    }


class RaisedSerializer(serializers.Serializer):
    alarm_id = serializers.UUIDField()
    status = serializers.ChoiceField(Status.choices)
    created = serializers.BooleanField(help_text="False: a repeat, counted on the open alarm.")
    occurrences = serializers.IntegerField()


class ClearedSerializer(serializers.Serializer):
    alarm_id = serializers.UUIDField()
    status = serializers.ChoiceField(Status.choices)


class AlarmActionSerializer(AlarmSerializer):
    changed = serializers.BooleanField(help_text="False: the alarm was already in that state.")
    detail = serializers.CharField(
        required=False, help_text='A repeated acknowledge: "already acknowledged by X at T".'
    )

    class Meta(AlarmSerializer.Meta):
        fields = [*AlarmSerializer.Meta.fields, "changed", "detail"]


class AlertResultSerializer(serializers.Serializer):
    fingerprint = serializers.CharField()
    alarm_id = serializers.UUIDField(allow_null=True)
    action = serializers.ChoiceField(
        ["raised", "reopened", "updated", "unchanged", "resolved", "not open", "failed"]
    )
    error = serializers.CharField(
        required=False,
        help_text="`failed` only: the database refused this alert (the others "
        "of the group were stored).",
    )


class AlertmanagerResultSerializer(serializers.Serializer):
    alerts = AlertResultSerializer(many=True, help_text="One per alert, in the order sent.")


class PagerDutyAcceptedSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["success"])
    message = serializers.CharField()
    dedup_key = serializers.CharField(help_text="The one sent, or the one made for the event.")


class PagerDutyInvalidSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["invalid event"])
    message = serializers.CharField()
    errors = serializers.ListField(child=serializers.CharField())


class PagerDutyThrottledSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["throttle event"])
    message = serializers.CharField()


class OpsgenieAcceptedSerializer(serializers.Serializer):
    result = serializers.CharField()
    took = serializers.FloatField(help_text="Seconds this request took.")
    requestId = serializers.UUIDField(help_text="What `GET /v2/alerts/requests/{id}` looks up.")


class OpsgenieErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="Field by field, for a 422."
    )
    took = serializers.FloatField()
    requestId = serializers.UUIDField()


class OpsgenieRequestSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    isSuccess = serializers.BooleanField()
    action = serializers.ChoiceField(["Create", "Close", "Acknowledge"])
    processedAt = serializers.DateTimeField()
    status = serializers.CharField()
    alertId = serializers.CharField(help_text="The alarm's id; empty when none matched.")
    alias = serializers.CharField()
    integrationId = serializers.CharField()


class OpsgenieRequestStatusSerializer(serializers.Serializer):
    data = OpsgenieRequestSerializer()
    took = serializers.FloatField()
    requestId = serializers.UUIDField()


class HeartbeatSerializer(serializers.Serializer):
    device = serializers.CharField()
    last_seen_at = serializers.DateTimeField()


class MetricChangeSerializer(serializers.Serializer):
    rule = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField())
    alarm_id = serializers.UUIDField(allow_null=True)
    action = serializers.ChoiceField(["raised", "resolved"])


class MetricFailureSerializer(serializers.Serializer):
    rule = serializers.CharField()
    labels = serializers.DictField(child=serializers.CharField())
    error = serializers.CharField()


class MetricsResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Samples read.")
    changes = MetricChangeSerializer(many=True, help_text="Alarms raised or resolved.")
    failed = MetricFailureSerializer(
        many=True, help_text="Checks the database refused (the others were stored)."
    )
