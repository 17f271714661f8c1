"""Metric samples as senders post them (POST /v1/metrics, one; /v1/metrics/batch, many), checked
and handed to the metric rules (metric_rules.py). A sample's time is epoch seconds or ISO 8601
with a zone, and no further ahead of this server's clock than senders' clocks drift."""

import math
from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from core.labels import LabelsField, validate_labels
from core.storable_text import made_storable, within
from devices.models import Device

from . import devices, metric_rules
from .refusal import validated

MAX_SAMPLES = 1000  # in one batch


class SampleSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[A-Za-z_:][A-Za-z0-9_:]*\Z", max_length=200)
    value = serializers.FloatField(allow_null=False)
    labels = LabelsField(required=False, default=dict, validators=[validate_labels])
    time = serializers.CharField(required=False, max_length=64, help_text="Epoch seconds or ISO")

    def validate_value(self, value):
        if not math.isfinite(value):
            raise serializers.ValidationError("The value must be a finite number.")
        return value

    def validate_time(self, value):
        at = sample_time(value)
        if at is None:
            raise serializers.ValidationError(
                "Give epoch seconds or an ISO 8601 time with zone, within the years 1 to 9999."
            )
        if at > timezone.now() + metric_rules.MAX_AHEAD:
            raise serializers.ValidationError(
                f"The time is more than {metric_rules.MAX_AHEAD.total_seconds():.0f} s ahead of "
                "the server's clock."
            )
        return at


class BatchSerializer(serializers.Serializer):
    metrics = SampleSerializer(many=True, max_length=MAX_SAMPLES, allow_empty=False)


def sample_time(value: str) -> datetime | None:
    """Epoch seconds or an ISO 8601 time with zone, in UTC; None for anything else, or a time
    no datetime holds (inf, 1e20, an offset of 99 hours, before the year 1 in UTC)."""
    try:
        at = datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        try:
            at = parse_datetime(value)
        except ValueError:
            return None
    if at is None or at.tzinfo is None:
        return None
    try:
        return at.astimezone(UTC)
    except OverflowError:
        return None


def receive(body, device: Device, batch: bool) -> dict:
    """One sample (or a batch) from this sender: how many were taken, the alarms they changed
    and the rules that failed."""
    data, changed = made_storable(body)
    data = validated(BatchSerializer if batch else SampleSerializer, data)
    devices.admit(device)
    if batch:
        rows = data["metrics"]
        fixed = [within(changed, f"metrics[{n}]") for n in range(len(rows))]
    else:
        rows, fixed = [data], [changed]
    now = timezone.now()
    samples = [
        metric_rules.Sample(row["name"], row["value"], row["labels"], row.get("time") or now,
                            made_storable=tuple(made))
        for row, made in zip(rows, fixed, strict=True)
    ]  # fmt: skip
    changes, failed = metric_rules.record_samples(samples, device)
    return {"accepted": len(samples), "changes": changes, "failed": failed}
