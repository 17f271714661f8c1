"""The on-call API's shapes: an answer to who is on call, a stretch of a rota, an override."""

from django.core.exceptions import ValidationError
from rest_framework import serializers

from .models import Override


class ChosenSerializer(serializers.Serializer):
    person_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    why = serializers.CharField(allow_blank=True)
    until = serializers.DateTimeField(
        allow_null=True, required=False, help_text="When they stop being on call, if known."
    )


class AnswerSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(["schedule", "rotation"])
    id = serializers.IntegerField()
    name = serializers.CharField()
    at = serializers.DateTimeField()
    recorded = serializers.BooleanField(help_text="Read from the record of who was on call.")
    nobody = serializers.BooleanField()
    changes_at = serializers.DateTimeField(allow_null=True)
    team_id = serializers.IntegerField(allow_null=True)
    team = serializers.CharField(allow_null=True)
    people = ChosenSerializer(many=True)


class OnCallSerializer(serializers.Serializer):
    on_call = AnswerSerializer(many=True)


class StretchSerializer(serializers.Serializer):
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    people = ChosenSerializer(many=True)


class ShiftsSerializer(serializers.Serializer):
    kind = serializers.CharField()
    id = serializers.IntegerField()
    name = serializers.CharField()
    stretches = StretchSerializer(many=True)


def answer_data(answer, team) -> dict:
    return {
        "kind": answer.kind, "id": answer.id, "name": answer.name, "at": answer.at,
        "team_id": team.pk if team else None, "team": team.name if team else None,
        "recorded": answer.recorded, "nobody": answer.nobody, "changes_at": answer.changes_at,
        "people": [{"person_id": c.person_id, "name": c.name, "why": c.why,
                    "until": answer.until.get(c.person_id)} for c in answer.people],
    }  # fmt: skip


def stretch_data(stretch) -> dict:
    return {
        "starts_at": stretch.starts_at,
        "ends_at": stretch.ends_at,
        "people": [
            {"person_id": c.person_id, "name": c.name, "why": c.why} for c in stretch.people
        ],  # fmt: skip
    }


class OverrideSerializer(serializers.ModelSerializer):
    class Meta:
        model = Override
        fields = ["id", "schedule", "kind", "person", "replaces", "starts_at", "ends_at", "note",
                  "created_by", "created_at"]  # fmt: skip
        read_only_fields = ["created_by", "created_at"]

    def validate(self, attrs):
        """The model's own checks, as the admin and the seed run them."""
        override = Override(**{**self._current(), **attrs})
        if self.instance is not None:
            override.pk = self.instance.pk
        try:
            override.full_clean(exclude=["created_by"])
        except ValidationError as exc:
            raise serializers.ValidationError(
                exc.message_dict
                if hasattr(exc, "error_dict")
                else {"non_field_errors": exc.messages}
            ) from None
        return attrs

    def _current(self) -> dict:
        if self.instance is None:
            return {}
        names = ["schedule", "kind", "person", "replaces", "starts_at", "ends_at", "note"]
        return {name: getattr(self.instance, name) for name in names}
