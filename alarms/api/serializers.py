"""The alarm API's own shapes: a note on an action, and an alarm as read. (What each source
takes is checked by the source: alarms/sources/.)"""

from rest_framework import serializers

from core.labels import LabelsField

from ..models import Alarm, AlarmEvent


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
