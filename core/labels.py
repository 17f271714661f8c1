"""Labels as every source takes them: an object of short strings, bounded in number."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

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
