"""Escalation policies: ordered steps of who to notify, how, and after what delay."""

from django.core.exceptions import ValidationError
from django.db import models

from notifications.transports import PERSON_METHODS


def validate_methods(value) -> None:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise ValidationError("Methods must be a list of names.")
    unknown = sorted(set(value) - set(PERSON_METHODS))
    if unknown:
        raise ValidationError(
            f"Unknown method(s): {', '.join(unknown)}. Known: {', '.join(PERSON_METHODS)}."
        )


def default_methods() -> list:
    return ["email"]


class EscalationPolicy(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    repeat_count = models.PositiveIntegerField(
        default=0, help_text="How many more times to run all steps when nobody acknowledges."
    )
    repeat_after_seconds = models.PositiveIntegerField(
        default=300, help_text="Pause after the last step before the steps run again."
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"

    def __str__(self):
        return self.name


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField(default=0)
    delay_seconds = models.PositiveIntegerField(
        default=0, help_text="Seconds after the previous step (for the first: after the trigger)."
    )
    persons = models.ManyToManyField("devices.Person", blank=True, related_name="+")
    methods = models.JSONField(
        default=default_methods,
        validators=[validate_methods],
        help_text='How to reach the persons, e.g. ["email"].',
    )
    channels = models.ManyToManyField(
        "notifications.NotificationChannel", blank=True, related_name="+"
    )

    class Meta:
        ordering = ["policy", "order"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "order"], name="unique_step_order")
        ]

    def __str__(self):
        return f"{self.policy.name}: step {self.order}"
