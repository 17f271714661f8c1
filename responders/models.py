"""What responders send back: a reply to an SMS or Signal message, kept before it is acted on."""

from django.db import models


class Reply(models.Model):
    """One message a phone sent us, stored as it arrived and then handled once: by the worker,
    or by the sweep when the worker was away when it came."""

    class Method(models.TextChoices):
        SMS = "sms", "SMS"
        SIGNAL = "signal", "Signal"

    channel = models.ForeignKey(
        "notifications.NotificationChannel",
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The gateway it came through, which carries the answer back.",
    )
    method = models.CharField(max_length=10, choices=Method.choices)
    sender = models.CharField(max_length=64, help_text="The number it came from, as sent.")
    text = models.TextField(blank=True)
    provider_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="The provider's id for it; a message delivered twice is stored once.",
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    person = models.ForeignKey(
        "devices.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    alarm = models.ForeignKey(
        "alarms.Alarm", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=300, blank=True, help_text="What came of it.")
    answer = models.TextField(blank=True, help_text="What we answered; empty: nothing.")
    answer_status = models.CharField(
        max_length=300, blank=True, help_text="What the provider said to the last try."
    )
    answer_attempts = models.PositiveSmallIntegerField(default=0)
    answer_tried_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True, help_text="When the answer went.")

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "replies"
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "provider_id"],
                condition=~models.Q(provider_id=""),
                name="one_reply_per_provider_id",
            )
        ]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=models.Q(handled_at__isnull=True),
                name="reply_unhandled",
            )
        ]

    def __str__(self):
        return f"{self.get_method_display()} from {self.sender}: {self.text[:40]}"
