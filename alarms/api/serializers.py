"""Input validation and output shapes for the alarm API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Alarm, AlarmEvent, Severity

MAX_LABELS = 64


def validate_labels(value):
    if not isinstance(value, dict):
        raise serializers.ValidationError("Labels must be an object of strings.")
    if len(value) > MAX_LABELS:
        raise serializers.ValidationError(f"At most {MAX_LABELS} labels.")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 100 or len(item) > 1000:
            raise serializers.ValidationError(
                "Each label is a string of at most 1000 characters, keyed by at most 100."
            )
    return value


@extend_schema_field(
    {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": MAX_LABELS}
)
class LabelsField(serializers.JSONField):
    """An object of strings (as validate_labels checks), so described in the API's schema."""


class RaiseSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=50, default="api")
    dedup_key = serializers.CharField(max_length=200, required=False)
    title = serializers.CharField(max_length=255)
    message = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    severity = serializers.ChoiceField(choices=Severity.choices, default=Severity.CRITICAL)
    labels = LabelsField(required=False, default=dict, validators=[validate_labels])


class ClearSerializer(serializers.Serializer):
    dedup_key = serializers.CharField(max_length=200)
    message = serializers.CharField(max_length=10000, required=False, allow_blank=True)


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlarmEvent
        fields = ["at", "kind", "actor", "text", "detail"]


class AlarmSerializer(serializers.ModelSerializer):
    labels = LabelsField(read_only=True)
    details = serializers.DictField(
        read_only=True,
        help_text="What the source sent beside labels: Alertmanager's annotations and "
        "generatorURL, PagerDuty's custom_details and links, a metric rule's value.",
    )
    # By name; null when the alarm has none.
    site = serializers.StringRelatedField(allow_null=True)
    room = serializers.StringRelatedField(allow_null=True)
    person = serializers.StringRelatedField(allow_null=True)
    device = serializers.StringRelatedField(allow_null=True)
    policy = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = Alarm
        fields = [
            "id", "source", "dedup_key", "title", "message", "severity", "labels", "details",
            "status", "occurrences", "created_at", "last_occurrence_at", "acknowledged_at",
            "acknowledged_by", "resolved_at", "resolved_by", "site", "room", "person", "device",
            "policy", "silenced_by", "current_step", "current_round", "next_escalation_at",
        ]  # fmt: skip


class AlarmDetailSerializer(AlarmSerializer):
    events = EventSerializer(many=True, read_only=True)

    class Meta(AlarmSerializer.Meta):
        fields = AlarmSerializer.Meta.fields + ["events"]
