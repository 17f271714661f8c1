"""The alarm API's own shapes: a note on an action, and an alarm as read. (What each source
takes is checked by the source: alarms/sources/.)"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.labels import LabelsField

from ..lifecycle import MAX_ETA_MINUTES
from ..models import Alarm, AlarmEvent, Claim


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ClaimRequestSerializer(NoteSerializer):
    eta_minutes = serializers.IntegerField(
        min_value=1, max_value=MAX_ETA_MINUTES, required=False, allow_null=True, default=None,
        help_text="Minutes until you are there; none: no ETA.",
    )  # fmt: skip


class ClaimSerializer(serializers.ModelSerializer):
    class Meta:
        model = Claim
        fields = ["name", "via", "claimed_at", "eta_at"]


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
    claims = serializers.SerializerMethodField(help_text="Who said they are on the way.")

    class Meta:
        model = Alarm
        fields = [
            "id", "source", "dedup_key", "title", "message", "severity", "labels", "details",
            "status", "occurrences", "created_at", "last_occurrence_at", "acknowledged_at",
            "acknowledged_by", "resolved_at", "resolved_by", "site", "room", "person", "device",
            "policy", "silenced_by", "current_step", "current_round", "next_escalation_at",
            "claims",
        ]  # fmt: skip

    @extend_schema_field(ClaimSerializer(many=True))
    def get_claims(self, alarm) -> list:
        claims = [c for c in alarm.claims.all() if c.cycle == alarm.reopen_count]
        return ClaimSerializer(claims, many=True).data


class AlarmDetailSerializer(AlarmSerializer):
    events = EventSerializer(many=True, read_only=True)

    class Meta(AlarmSerializer.Meta):
        fields = AlarmSerializer.Meta.fields + ["events"]
