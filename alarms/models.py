"""Alarms, their timeline, and the per-recipient links that acknowledge them."""

import uuid

from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ValidationError
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
