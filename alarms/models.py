"""Alarms, their timeline, and the per-recipient links that acknowledge them."""

import uuid

import regex
from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.functional import cached_property

from core import label_matchers  # plain functions: these import no models
from core.time_windows import validate_time_zone


class Severity(models.TextChoices):
    CRITICAL = "critical"
    HIGH = "high"
    WARNING = "warning"
    INFO = "info"


SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.WARNING: 2, Severity.INFO: 3}


class Status(models.TextChoices):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


OPEN_STATUSES = (Status.TRIGGERED, Status.ACKNOWLEDGED)


class Alarm(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.CharField(max_length=50, help_text="yealink, api, …")
    device = models.ForeignKey(
        "devices.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    site = models.ForeignKey("devices.Site", null=True, blank=True, on_delete=models.SET_NULL)
    room = models.ForeignKey("devices.Room", null=True, blank=True, on_delete=models.SET_NULL)
    person = models.ForeignKey(
        "devices.Person",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alarms_about",
        help_text="Who the alarm is about (the person the device stands for).",
    )
    dedup_key = models.CharField(max_length=255)
    title = models.CharField(max_length=255)
    message = models.TextField(blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.CRITICAL)
    labels = models.JSONField(default=dict, blank=True)
    # What the source sent beyond title and labels: Alertmanager annotations and links,
    # PagerDuty custom details.
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.TRIGGERED)
    occurrences = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_occurrence_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=200, blank=True)
    # How often it fired again after it was resolved (within FLAP_WINDOW_SECONDS), and when it
    # last did. Each reopening is a new cycle of its escalation: its messages are new ones.
    reopen_count = models.PositiveIntegerField(default=0)
    reopened_at = models.DateTimeField(null=True, blank=True)

    # Why the alarm notifies nobody although it is open: a routing rule, a silence or an
    # inhibiting alarm (set when it was routed).
    silenced_by = models.CharField(max_length=300, blank=True)
    # The storm alarm this one was folded into (the storm guard): the board shows it under it.
    folded_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="folded"
    )

    # Escalation state, owned by alarms.engine.
    policy = models.ForeignKey(
        "escalation.EscalationPolicy", null=True, blank=True, on_delete=models.SET_NULL
    )
    steps_snapshot = models.JSONField(default=list, blank=True, editable=False)
    repeat_count = models.PositiveIntegerField(default=0, editable=False)
    repeat_after_seconds = models.PositiveIntegerField(default=0, editable=False)
    current_step = models.IntegerField(default=-1, help_text="-1 until the first step has run.")
    current_round = models.PositiveIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True)
    escalation_token = models.UUIDField(null=True, blank=True, editable=False)
    # A step due at once is queued without a countdown: the sweeper leaves it to its task until
    # then (see alarms/engine.py).
    step_queued_until = models.DateTimeField(null=True, blank=True, editable=False)

    # When the ETA of every claim of this cycle has passed, if its policy then escalates again
    # (`EscalationPolicy.escalate_late_claims`); the sweep does it when the alarm is still open.
    late_claims_at = models.DateTimeField(null=True, blank=True, editable=False)

    # What channels remember about what they posted (a Zammad ticket id…), keyed "channel:<id>",
    # so a later step or the ACK updates that post instead of making a new one.
    external_refs = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("acknowledge_alarm", "Can acknowledge alarms"),
            ("resolve_alarm", "Can resolve alarms"),
            ("cancel_alarm", "Can cancel alarms"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(status__in=["triggered", "acknowledged"]),
                name="one_open_alarm_per_dedup_key",
            )
        ]
        indexes = [
            models.Index(
                fields=["next_escalation_at"],
                condition=Q(status="triggered"),
                name="alarm_due_escalation",
            ),
            models.Index(fields=["status", "-created_at"]),
            models.Index(
                fields=["late_claims_at"],
                condition=Q(status="acknowledged"),
                name="alarm_late_claims",
            ),
            # The flapping check: was this key resolved a moment ago?
            models.Index(
                fields=["dedup_key", "-resolved_at"],
                condition=Q(status="resolved"),
                name="alarm_resolved_by_key",
            ),
        ]

    def __str__(self):
        return f"{self.title} [{self.status}]"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class AlarmEvent(models.Model):
    """One entry of an alarm's timeline: what happened, when, who did it, from where."""

    class Kind(models.TextChoices):
        TRIGGERED = "triggered"
        REPEATED = "repeated"
        UPDATED = "updated"
        REOPENED = "reopened"
        ROUTED = "routed"
        ON_CALL = "on_call"
        NOBODY_ON_CALL = "nobody_on_call"
        UNREACHABLE = "unreachable", "person unreachable"
        STEP_NOTIFIED = "step_notified"
        STEP_SKIPPED = "step_skipped"
        ESCALATION_ENDED = "escalation_ended"
        DELIVERY_SENT = "delivery_sent"
        DELIVERY_RETRIED = "delivery_retried"
        DELIVERY_FAILED = "delivery_failed"
        ACK_LINK_OPENED = "ack_link_opened"
        ACKNOWLEDGED = "acknowledged"
        CLAIMED = "claimed"
        CLAIMS_LATE = "claims_late", "claimed but not arrived"
        REPLY = "reply", "reply received"
        CALL = "call", "call ended"
        RESOLVED = "resolved"
        CANCELLED = "cancelled"

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    actor = models.CharField(max_length=200, blank=True, help_text="Who or what did it.")
    person = models.ForeignKey(
        "devices.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    text = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.text}"


class Claim(models.Model):
    """A responder on the way ("on my way, 10 minutes"): the first claim acknowledges the alarm;
    everyone who claims is kept, each with their ETA, for the board's countdown."""

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="claims")
    cycle = models.PositiveIntegerField(default=0, help_text="The alarm's reopen_count then.")
    person = models.ForeignKey(
        "devices.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200, help_text="Who is on the way.")
    via = models.CharField(max_length=200, blank=True, help_text="How they said so.")
    claimed_at = models.DateTimeField()
    eta_at = models.DateTimeField(null=True, blank=True, help_text="When they expect to arrive.")

    class Meta:
        ordering = ["claimed_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["alarm", "cycle", "person"],
                condition=Q(person__isnull=False),
                name="one_claim_per_person_and_cycle",
            )
        ]

    def __str__(self):
        return f"{self.name} on the way to {self.alarm_id}"


class AckLink(models.Model):
    """A recipient's capability to acknowledge one alarm: the URL holds the token, we its hash."""

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="ack_links")
    person = models.ForeignKey(
        "devices.Person", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.ForeignKey(
        "notifications.NotificationChannel",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="For a link posted to a channel (a chat room): whoever reads it may use it.",
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # A push notification's buttons act once through the link (`alarms.views.ack_action`).
    action_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"ACK link for {self.person or self.channel} on {self.alarm_id}"


class MetricRule(models.Model):
    """Raise an alarm when a metric sent to /v1/metrics crosses a threshold and stays there for
    `for_seconds`; resolve it when it stops; raise again no sooner than `cooldown_seconds`
    after that. Each label set of the metric (a series) is watched on its own."""

    class Operator(models.TextChoices):
        GT = ">", "greater than"
        LT = "<", "less than"
        GE = ">=", "at least"
        LE = "<=", "at most"
        EQ = "==", "equal to"
        NE = "!=", "not equal to"

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    metric = models.CharField(max_length=200, db_index=True, help_text="e.g. fridge_temperature_c")
    matchers = models.TextField(
        blank=True,
        help_text='Only series whose labels match, e.g. {room=~"Pharmacy.*"}; empty: all.',
    )
    operator = models.CharField(max_length=2, choices=Operator.choices)
    threshold = models.FloatField()
    for_seconds = models.PositiveIntegerField(
        default=0, help_text="How long the condition must hold before the alarm is raised."
    )
    cooldown_seconds = models.PositiveIntegerField(
        default=300, help_text="After it resolved, no new alarm from this series for this long."
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.HIGH)
    site = models.ForeignKey("devices.Site", null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        label_matchers.validate(self.matchers)

    @cached_property
    def parsed_matchers(self) -> list:
        """Parsed once per instance: a batch checks many samples against the same rules."""
        return label_matchers.parse(self.matchers)

    def holds(self, value: float) -> bool:
        threshold = self.threshold
        return {
            ">": value > threshold, "<": value < threshold, ">=": value >= threshold,
            "<=": value <= threshold, "==": value == threshold, "!=": value != threshold,
        }[self.operator]  # fmt: skip


class MetricSeries(models.Model):
    """Where one series stands against one rule: since when the condition holds, whether its
    alarm is open, when it last resolved (for the cooldown)."""

    rule = models.ForeignKey(MetricRule, on_delete=models.CASCADE, related_name="series")
    key = models.CharField(max_length=64, help_text="Hash of the series' labels.")
    labels = models.JSONField(default=dict)
    last_value = models.FloatField(null=True)
    last_at = models.DateTimeField(null=True)
    holding_since = models.DateTimeField(null=True)
    firing = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "key"], name="one_series_per_rule")]

    def __str__(self):
        return f"{self.rule.name} {self.labels}"


class ScheduledAlarm(models.Model):
    """An alarm raised on a schedule: a reminder, or the weekly end-to-end test of the whole
    chain. Its schedule lives in django-celery-beat's tables (a periodic task kept in step with
    this row on every save), so beat runs it and its admin lists it with every other schedule."""

    name = models.CharField(max_length=200, unique=True)
    enabled = models.BooleanField(default=True)
    title = models.CharField(max_length=255)
    message = models.TextField(blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)
    labels = models.JSONField(default=dict, blank=True)
    site = models.ForeignKey("devices.Site", null=True, blank=True, on_delete=models.SET_NULL)
    policy = models.ForeignKey(
        "escalation.EscalationPolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Follow this policy (routing rules are skipped; silences still apply); "
        "empty: route it like any alarm (source schedule).",
    )
    crontab = models.CharField(
        max_length=100,
        blank=True,
        help_text='Recurring: "minute hour day-of-month month day-of-week", e.g. "0 9 * * mon" '
        "for Mondays at 09:00.",
    )
    run_at = models.DateTimeField(null=True, blank=True, help_text="Once: at this time.")
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="Of the crontab."
    )
    new_alarm_each_time = models.BooleanField(
        "open a new alarm each time",
        default=False,
        help_text="Off (the default): a firing while the alarm of an earlier one is still open "
        "counts as a repeat of it (one more occurrence), so a recurring alarm left "
        "unacknowledged does not pile up; once that alarm is resolved the next firing opens "
        "(or, soon after the resolve, reopens) it as any alarm. On: every firing is an alarm "
        "of its own.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, editable=False,
        on_delete=models.SET_NULL, related_name="+",
    )  # fmt: skip
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if bool(self.crontab.strip()) == bool(self.run_at):
            raise ValidationError("Give either a crontab (recurring) or a time (once).")
        if self.crontab.strip():
            self.crontab_fields()

    def crontab_fields(self) -> dict:
        """The crontab as django-celery-beat's fields; a ValidationError if it is not one."""
        parts = self.crontab.split()
        if len(parts) != 5:
            raise ValidationError(
                {"crontab": "A crontab has five fields: minute hour day month weekday."}
            )
        names = ["minute", "hour", "day_of_month", "month_of_year", "day_of_week"]
        fields = dict(zip(names, parts, strict=True))
        try:
            crontab(**fields)  # parses each field
        except Exception as exc:  # noqa: BLE001 (celery's parser raises several kinds)
            raise ValidationError({"crontab": f"Not a crontab: {exc}"}) from exc
        return fields


class CapFeed(models.Model):
    """A published feed of public warnings: Atom or RSS whose entries link to (or carry) CAP
    1.2 alerts, polled with conditional GETs; its alerts are taken as its CAP device's."""

    name = models.CharField(max_length=200, unique=True)
    device = models.ForeignKey(
        "devices.Device",
        on_delete=models.CASCADE,
        related_name="cap_feeds",
        limit_choices_to={"kind": "cap"},
        help_text="An integration of kind 'Public warnings (CAP 1.2 sender or feed)': its "
        "alarms, rate limit and routing.",
    )
    url = models.URLField(max_length=2000, help_text="The Atom or RSS feed's address.")
    enabled = models.BooleanField(default=True)
    poll_interval_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(30)]
    )
    etag = models.CharField(max_length=500, blank=True, editable=False)
    last_modified = models.CharField(max_length=100, blank=True, editable=False)
    # The entries of the last poll that were taken (the feed's own ids): a re-poll fetches
    # only the new ones. Bounded by the feed: entries that left it are forgotten.
    seen_entries = models.JSONField(default=list, blank=True, editable=False)
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class CapMessage(models.Model):
    """A CAP message a device sent us, by its identity (sender, identifier): the alarm key it
    concerns, so that updates and cancels referencing it find that alarm, and a repeat of it
    changes nothing."""

    device = models.ForeignKey("devices.Device", on_delete=models.CASCADE, related_name="+")
    sender = models.CharField(max_length=255)
    identifier = models.CharField(max_length=255)
    sent = models.CharField(max_length=40)
    msg_type = models.CharField(max_length=10)
    dedup_key = models.CharField(max_length=255)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "sender", "identifier"], name="one_cap_message_per_identity"
            )
        ]

    def __str__(self):
        return f"{self.msg_type} {self.sender},{self.identifier}"


# A subject that says the trouble is over, where devices put that: a state word first
# ("RESOLVED:", "[OK]", "** RECOVERY", "NORMAL:"), OK, restored or cleared last ("Zone 4 OK"),
# or a phrase ("back to normal", "no longer on battery"). Not a word anywhere: "clear the
# building", "outside normal range" and "is back-up" are alarms; "not OK" is not an all-clear.
DEFAULT_RESOLVED_PATTERN = (
    r"(?i)^[\W_]*(?:\[[^\]]{1,40}\][\W_]*)?"
    r"(?:(?:resolved|recovery|recovered|cleared|restored|ok|okay)\b|(?:clear|normal)\s*[:\]-])"
    r"|(?<!not )(?<!no longer )\b(?:ok|okay|restored|cleared|resolved|recovered)[\W_]*$"
    r"|(?<!not )\b(?:back to normal|return(?:ed)? to normal|(?:is )?back online|all clear|no longer"
    r"(?!\s+(?:ok|okay|normal|online|available|reachable|responding|running|redundant)\b))\b"
)


def validate_pattern(value: str) -> None:
    """Compiled by the engine email in matches patterns with (regex: it has a timeout)."""
    try:
        regex.compile(value)
    except regex.error as exc:
        raise ValidationError(f"Not a regular expression: {exc}") from exc


validate_local_part = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?$",
    "Lower-case letters, digits and . _ + - (not at either end), at most 64 characters.",
)


class InboundAddress(models.Model):
    """The address a mail-only device (an email integration) sends its alarms to,
    <local part>@<any of MAIL_IN_DOMAINS>, and how its mails are read."""

    device = models.OneToOneField(
        "devices.Device",
        on_delete=models.CASCADE,
        related_name="inbound_address",
        limit_choices_to={"kind": "email"},
        help_text="An integration of kind 'Mail-only device or system (email in)'.",
    )
    local_part = models.CharField(
        max_length=64,
        unique=True,
        validators=[validate_local_part],
        help_text="What comes before the @: ups-basement for ups-basement@alarms.example.org.",
    )
    resolved_pattern = models.CharField(
        max_length=500,
        default=DEFAULT_RESOLVED_PATTERN,
        validators=[validate_pattern],
        help_text="A regular expression: a subject it matches resolves the open alarm with the "
        "same key instead of raising one.",
    )
    key_pattern = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_pattern],
        help_text="A regular expression searched in the subject: its first group (or what it "
        "matched) is the alarm's key, so an alarm mail and its all-clear share one; empty, or "
        "no match: the subject without state words (alarm, OK…), dates, times and measured "
        "values.",
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.HIGH)

    class Meta:
        verbose_name_plural = "inbound addresses"
        ordering = ["local_part"]

    def __str__(self):
        return self.local_part

    def save(self, *args, **kwargs):
        self.local_part = self.local_part.strip().lower()  # looked up in lower case
        super().save(*args, **kwargs)

    def clean(self):
        if self.device_id and self.device.kind != "email":
            raise ValidationError({"device": "Only an email integration has an address."})


class InboundMail(models.Model):
    """One mail as it arrived, stored before the sender is told it was taken, then read into
    an alarm once: by the listener at once, or by the sweep when it could not."""

    address = models.ForeignKey(
        InboundAddress, null=True, on_delete=models.SET_NULL, related_name="mails"
    )
    recipient = models.CharField(max_length=320)
    envelope_from = models.CharField(max_length=320, blank=True)
    peer = models.GenericIPAddressField(null=True, blank=True)
    raw = models.BinaryField(help_text="The message as received.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    alarm = models.ForeignKey(
        Alarm, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=300, blank=True, help_text="What came of it.")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="inbound_mail_unprocessed",
            )
        ]

    def __str__(self):
        return f"mail to {self.recipient} at {self.received_at:%Y-%m-%d %H:%M:%S}"
