"""Notification channels and the audit of every delivery attempt."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.template import TemplateSyntaxError
from django.utils import timezone

from core.config_cache import watch

from .messages import compile_template
from .transports import CHANNEL_KINDS, PERSON_METHODS, choices, transport_class
from .transports.base import ACKNOWLEDGED, CANCELLED, NOTIFY, RESOLVED, STAND_DOWN

TEMPLATE_HELP = (
    "Optional Django template replacing the shipped one for this channel. Variables: alarm.title, "
    "alarm.message, alarm.severity, alarm.status, alarm.location, alarm.site, alarm.room, "
    "alarm.person, alarm.device, alarm.source, alarm.occurrences, alarm.created_at, alarm.labels, "
    "alarm.url, alarm.id, event (notify, acknowledged, resolved, cancelled, test), step, round, "
    "actor, note, ack_url. Alarm text arrives already escaped for this channel's format."
)


class NotificationChannel(models.Model):
    kind = models.CharField(max_length=30, choices=choices(CHANNEL_KINDS))
    name = models.CharField(max_length=200, unique=True)
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    subject_template = models.TextField(blank=True, help_text=TEMPLATE_HELP)
    body_template = models.TextField(blank=True, help_text=TEMPLATE_HELP)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.kind})"

    def clean(self):
        errors = {}
        if self.kind in CHANNEL_KINDS:
            try:
                self.config = transport_class(self.kind).clean_config(self.config)
            except ValidationError as exc:
                errors["config"] = exc.messages
        for name in ("subject_template", "body_template"):
            try:
                compile_template(getattr(self, name))
            except TemplateSyntaxError as exc:
                errors[name] = [f"Template error: {exc}"]
        if errors:
            raise ValidationError(errors)

    def transport(self):
        return transport_class(self.kind)(self.config)

    def shown_config(self) -> dict:
        """The configuration with its secrets masked, for the audit trail and exports."""
        secret = {spec.name for spec in transport_class(self.kind).config_fields if spec.secret}
        return {key: "***" if key in secret else value for key, value in self.config.items()}


class Delivery(models.Model):
    """One message to one target for one step of one round of an alarm, or one follow-up
    (acknowledged, resolved, cancelled) to a channel a step posted to.

    The natural key is unique, so a step that runs twice cannot send twice.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        CANCELLED = "cancelled", "cancelled (alarm closed first)"

    class Event(models.TextChoices):
        NOTIFY = NOTIFY, "step notification"
        ACKNOWLEDGED = ACKNOWLEDGED
        RESOLVED = RESOLVED
        CANCELLED = CANCELLED
        STAND_DOWN = STAND_DOWN, "stand-down"

    class CallOutcome(models.TextChoices):
        ACKNOWLEDGED = "acknowledged", "answered: acknowledged (key 4)"
        CLAIMED = "claimed", "answered: on the way (key 5)"
        NO_KEY = "no_key", "answered, no key pressed"
        VOICEMAIL = "voicemail", "voicemail answered"
        BUSY = "busy"
        NO_ANSWER = "no_answer", "no answer"
        FAILED = "failed", "call failed"

    alarm = models.ForeignKey("alarms.Alarm", on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=15, choices=Event.choices, default=Event.NOTIFY)
    # The alarm's reopen_count when this was created: a reopened alarm's messages are new ones.
    cycle = models.PositiveIntegerField(
        "reopening", default=0, help_text="0: before the alarm first fired again after a resolve."
    )
    step = models.PositiveIntegerField()
    round = models.PositiveIntegerField(default=0)
    target = models.CharField(max_length=100, help_text="person:<id> or channel:<id>")
    method = models.CharField(max_length=30, choices=choices({**PERSON_METHODS, **CHANNEL_KINDS}))
    person = models.ForeignKey(
        "devices.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(
        NotificationChannel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The channel posted to, or the gateway that carried a person's SMS/Signal.",
    )
    address = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    queued_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Its task is queued: the sweeper leaves it alone until then.",
    )
    provider_status = models.CharField(
        max_length=50, blank=True, help_text="HTTP status or SMTP reply code of the last attempt."
    )
    provider_message_id = models.CharField(max_length=200, blank=True)
    latency_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long the last attempt's call took."
    )
    response = models.TextField(blank=True, help_text="What the provider answered.")
    error = models.TextField(blank=True)
    message = models.TextField(blank=True, help_text="What was sent.")
    outcome = models.CharField(
        "call outcome",
        max_length=15,
        choices=CallOutcome.choices,
        blank=True,
        help_text="For a phone call: what came of it once it ended.",
    )
    claimed_by = models.CharField(
        max_length=200,
        blank=True,
        help_text="The worker process that took it for its last attempt.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Attempts older than the last DeliveryAttempt.KEPT, counted by what came of them
    # ({"count": 37, "first_at": "…", "outcomes": {"HTTP 503": 30, "connection failed": 7}}).
    earlier_attempts = models.JSONField(default=dict, blank=True)
    # Per-recipient throttling (`delivery.throttle`): the limit that held this page back, and
    # the message it went in with other held pages.
    held_by = models.CharField(
        max_length=100, blank=True, help_text="The limit that held it back, e.g. 5 per 15 min."
    )
    bundled_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="bundled",
        help_text="It went out in this delivery's message, with other pages held back.",
    )  # fmt: skip
    bundle_code = models.PositiveIntegerField(
        null=True, blank=True, help_text='A bundle\'s reply code ("100a" acknowledges all).'
    )

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["alarm", "cycle", "event", "step", "round", "target", "method"],
                name="one_delivery_per_key",
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # A contact point's recent messages, counted by the throttle.
            models.Index(fields=["method", "address", "sent_at"]),
            # The bundles' codes of a phone (rare: most rows have none).
            models.Index(
                fields=["address", "sent_at"],
                condition=Q(bundle_code__isnull=False),
                name="bundle_codes",
            ),  # fmt: skip
        ]

    def __str__(self):
        return f"{self.describe()}, {self.what()}: {self.status}"

    def idempotency_key(self) -> str:
        """The same on every attempt of this message and unique to it (its natural key), for
        providers that drop what they already took: an email's Message-ID."""
        parts = (self.alarm_id, self.cycle, self.event, self.step, self.round, self.target)
        return ".".join(map(str, parts)) + f".{self.method}"

    def what(self) -> str:
        what = f"step {self.step + 1}" if self.event == NOTIFY else self.event
        return f"{what} after reopening {self.cycle}" if self.cycle else what

    def describe(self) -> str:
        target = self.person or self.channel
        return f"{target.name if target else self.target} by {self.method}"


class ReplyCode(models.Model):
    """The number a phone number answers an alarm by ("1a"): each open alarm a person was paged
    about by SMS or Signal gets the smallest number free on that phone, and keeps it while open.
    Once the alarm closes the code is released (kept, to answer a late reply) and may be given
    to the next alarm."""

    address = models.CharField(max_length=32, help_text="The phone number (E.164).")
    number = models.PositiveIntegerField()
    cycle = models.PositiveIntegerField(
        default=0, help_text="The alarm's reopen_count when it was taken."
    )
    alarm = models.ForeignKey("alarms.Alarm", on_delete=models.CASCADE, related_name="+")
    person = models.ForeignKey("devices.Person", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    paged_at = models.DateTimeField(
        default=timezone.now, help_text="Its last message to the phone."
    )
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["address", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["address", "number"],
                condition=models.Q(released_at__isnull=True),
                name="one_open_code_per_number",
            ),
            models.UniqueConstraint(
                fields=["address", "alarm"],
                condition=models.Q(released_at__isnull=True),
                name="one_open_code_per_alarm",
            ),
        ]
        indexes = [models.Index(fields=["alarm"])]

    def __str__(self):
        return f"#{self.number} on {self.address}"


# Unfinished: waiting for its time or its turn, or being sent.
BUSY = (Delivery.Status.PENDING, Delivery.Status.SENDING)


class DeliveryAttempt(models.Model):
    """One try of a delivery and what came of it, so an operator can see why a message was late
    (a 429 and a 500 before the 200). Each delivery keeps its last KEPT; older ones are counted
    on the delivery (`earlier_attempts`)."""

    KEPT = 20

    class Outcome(models.TextChoices):
        SENT = "sent"
        RETRIED = "retried", "failed, tried again"
        FAILED = "failed", "failed for good"
        LOST = "lost", "no answer: its worker process died"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="tries")
    number = models.PositiveIntegerField(help_text="1 for the first attempt.")
    at = models.DateTimeField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    provider_status = models.CharField(max_length=50, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    answer = models.TextField(blank=True, help_text="What the provider answered, or the error.")

    class Meta:
        ordering = ["delivery", "number", "id"]
        indexes = [models.Index(fields=["delivery", "number"])]

    def __str__(self):
        return f"attempt {self.number}: {self.get_outcome_display()} {self.provider_status}"


# Steps' channels and people's gateways are kept by each process (notifications/delivery.py).
watch(NotificationChannel)


class PushSubscription(models.Model):
    """A browser that keeps the responder page (`/me/`) and takes Web Push for its person: the
    push service's endpoint and the keys the payload is encrypted to (RFC 8291)."""

    person = models.ForeignKey(
        "devices.Person", on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = models.URLField(max_length=1000, unique=True)
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=50)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["person", "created_at"]

    def __str__(self):
        return f"{self.person}: {urlsplit(self.endpoint).netloc}"
