"""Notification channels and the audit of every delivery attempt."""

from django.core.exceptions import ValidationError
from django.db import models

from .transports import CHANNEL_KINDS, PERSON_METHODS, choices, transport_class


class NotificationChannel(models.Model):
    kind = models.CharField(max_length=30, choices=choices(CHANNEL_KINDS))
    name = models.CharField(max_length=200, unique=True)
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.kind})"

    def clean(self):
        if self.kind in CHANNEL_KINDS:
            try:
                self.config = transport_class(self.kind).clean_config(self.config)
            except ValidationError as exc:
                raise ValidationError({"config": exc.messages}) from exc

    def transport(self):
        return transport_class(self.kind)(self.config)


class Delivery(models.Model):
    """One message to one target for one step of one round of an alarm.

    The natural key is unique, so a step that runs twice cannot send twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"
        CANCELLED = "cancelled", "cancelled (alarm closed first)"

    alarm = models.ForeignKey("alarms.Alarm", on_delete=models.CASCADE, related_name="deliveries")
    step = models.PositiveIntegerField()
    round = models.PositiveIntegerField(default=0)
    target = models.CharField(max_length=100, help_text="person:<id> or channel:<id>")
    method = models.CharField(
        max_length=30, choices=choices(PERSON_METHODS) + choices(CHANNEL_KINDS)
    )
    person = models.ForeignKey(
        "devices.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(
        NotificationChannel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    address = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    response = models.TextField(blank=True)
    error = models.TextField(blank=True)
    message = models.TextField(blank=True, help_text="What was sent.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["alarm", "step", "round", "target", "method"], name="one_delivery_per_key"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self):
        return f"{self.describe()}, step {self.step + 1}: {self.status}"

    def describe(self) -> str:
        target = self.person or self.channel
        return f"{target.name if target else self.target} by {self.method}"
