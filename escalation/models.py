"""Escalation policies: ordered steps of who to notify, how, and after what delay."""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.functional import cached_property

from alarms.models import SEVERITY_RANK, Severity
from core import label_matchers
from core.time_windows import DAY_NAMES, default_time_zone, validate_days, validate_time_zone
from notifications.transports import PERSON_METHODS, PERSONAL


def validate_methods(value) -> None:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise ValidationError("Methods must be a list of names.")
    unknown = sorted(set(value) - {*PERSON_METHODS, PERSONAL})
    if unknown:
        raise ValidationError(
            f"Unknown method(s): {', '.join(unknown)}. "
            f"Known: {', '.join(PERSON_METHODS)}, or {PERSONAL} (each person's own rules)."
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
    is_default = models.BooleanField(
        "global default",
        default=False,
        help_text="For alarms that no rule, device default or site default routes (one policy).",
    )
    damp_flapping = models.BooleanField(
        "damp flapping monitoring alarms",
        default=False,
        help_text="A monitoring alarm (Alertmanager, PagerDuty, metrics, heartbeats) that fires "
        "again soon after it was resolved tells the people already paged once, instead of "
        "escalating from the first step. Device alarms always escalate again.",
    )
    stand_down = models.BooleanField(
        "send stand-downs",
        default=True,
        help_text="When an alarm is acknowledged, resolved or cancelled, everyone a step paged "
        "gets one short message saying so, on the contact point they were paged on.",
    )
    escalate_late_claims = models.BooleanField(
        "escalate when a claim is late",
        default=False,
        help_text="When everyone who said they were on the way is past their ETA and the alarm "
        "is still open, escalate again from the first step (claimed but not arrived).",
    )

    team = models.ForeignKey(
        "oncall.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="policies"
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_global_default"
            )
        ]

    def __str__(self):
        return self.name


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField(default=0)
    delay_seconds = models.PositiveIntegerField(
        default=0, help_text="Seconds after the previous step (for the first: after the trigger)."
    )
    persons = models.ManyToManyField("devices.Person", blank=True, related_name="+")
    schedules = models.ManyToManyField(
        "oncall.Schedule",
        blank=True,
        related_name="steps",
        help_text="Whoever is on call in them when the step runs.",
    )
    rotations = models.ManyToManyField(
        "oncall.Rotation",
        blank=True,
        related_name="steps",
        help_text="Whoever has the turn in them when the step runs.",
    )
    methods = models.JSONField(
        default=default_methods,
        validators=[validate_methods],
        help_text='How to reach the persons (and whoever is on call), e.g. ["email"]; '
        '["personal"]: each by their own notification rules.',
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
        return f"{self.policy.name}: step {self.order + 1}"  # counted from 1, as people do


class SourceKind(models.TextChoices):
    YEALINK = "yealink"
    API = "api"
    ALERTMANAGER = "alertmanager"
    PAGERDUTY = "pagerduty"
    METRIC = "metric"
    SCHEDULE = "schedule"
    HEARTBEAT = "heartbeat"
    SIA = "sia", "Alarm panel (SIA DC-09)"
    CAP = "cap", "Public warnings (CAP)"
    OPSGENIE = "opsgenie"
    EMAIL = "email", "Email in"


LABEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

MATCHERS_HELP = (
    'Alertmanager matchers, e.g. {severity=~"critical|high", room!~"Lab.*"}. They see the '
    "alarm's labels, its source and severity, and its site, room and device when it has them."
)


class RoutingRule(models.Model):
    """Which alarms go where: the first enabled rule that matches decides (and with `continue`,
    the ones after it may add to that)."""

    name = models.CharField(max_length=200)
    order = models.PositiveIntegerField(default=0, help_text="Lower runs first.")
    enabled = models.BooleanField(default=True)
    team = models.ForeignKey(
        "oncall.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="rules"
    )

    # What it matches; an empty field matches anything.
    source = models.CharField(max_length=20, choices=SourceKind.choices, blank=True)
    device = models.ForeignKey("devices.Device", null=True, blank=True, on_delete=models.CASCADE)
    site = models.ForeignKey("devices.Site", null=True, blank=True, on_delete=models.CASCADE)
    room = models.ForeignKey("devices.Room", null=True, blank=True, on_delete=models.CASCADE)
    min_severity = models.CharField(
        "severity at least", max_length=10, choices=Severity.choices, blank=True
    )
    matchers = models.TextField(
        blank=True, validators=[label_matchers.validate], help_text=MATCHERS_HELP
    )
    days = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_days],
        help_text=f"Days the time window starts on, e.g. mon-fri or sat,sun ({', '.join(DAY_NAMES)}"
        "); empty: every day.",
    )
    start_time = models.TimeField(null=True, blank=True, help_text="Window start, e.g. 18:00.")
    end_time = models.TimeField(
        null=True, blank=True, help_text="Window end; earlier than the start: it ends the next day."
    )
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone]
    )
    outside_window = models.BooleanField(
        "outside the window",
        default=False,
        help_text="Match when the window does NOT hold: mon-fri 08:00–18:00 plus this is "
        '"outside business hours".',
    )

    # What it does.
    policy = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="rules"
    )
    set_severity = models.CharField(max_length=10, choices=Severity.choices, blank=True)
    silence = models.BooleanField(
        default=False, help_text="Store and show matching alarms, but notify nobody."
    )
    continue_matching = models.BooleanField(
        "continue",
        default=False,
        help_text="Let the rules after this one also apply (their policies run in parallel).",
    )

    class Meta:
        ordering = ["order", "pk"]

    def __str__(self):
        return self.name

    def clean(self):
        if not (self.policy_id or self.set_severity or self.silence):
            raise ValidationError("Choose what the rule does: a policy, a severity or silence.")
        if (self.start_time is None) != (self.end_time is None):
            raise ValidationError("Give both ends of the time window, or neither.")
        if self.room_id and self.site_id and self.room.site_id != self.site_id:
            raise ValidationError({"room": "This room belongs to another site."})

    @cached_property
    def parsed_matchers(self) -> list:
        """Parsed once per instance: routing keeps its rules between alarms."""
        return label_matchers.parse(self.matchers)

    def severity_ok(self, severity: str) -> bool:
        if not self.min_severity:
            return True
        return SEVERITY_RANK.get(severity, 9) <= SEVERITY_RANK[self.min_severity]


class Silence(models.Model):
    """A maintenance window: alarms matching it while it lasts are stored and shown, not sent."""

    matchers = models.TextField(validators=[label_matchers.validate], help_text=MATCHERS_HELP)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_by = models.CharField(max_length=200)
    comment = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self):
        return f"Silence {self.pk}: {self.comment[:60]}"

    def clean(self):
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError("A silence must end after it starts.")
        if not self.parsed_matchers:
            raise ValidationError({"matchers": "A silence needs at least one matcher."})

    @cached_property
    def parsed_matchers(self) -> list:
        return label_matchers.parse(self.matchers)


class Inhibition(models.Model):
    """While an open alarm matches the source matchers, new alarms matching the target matchers
    that have the same values of the `equal` labels are silenced (a site-wide power alarm
    inhibits the per-room alarms of that site)."""

    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    source_matchers = models.TextField(
        validators=[label_matchers.validate], help_text=MATCHERS_HELP
    )
    target_matchers = models.TextField(
        validators=[label_matchers.validate], help_text=MATCHERS_HELP
    )
    equal = models.CharField(
        max_length=300, blank=True, help_text="Labels both alarms must share, e.g. site"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if not self.parsed_source or not self.parsed_target:
            raise ValidationError("An inhibition needs source and target label_matchers.")
        odd = [n for n in self.equal_labels() if not LABEL_NAME.fullmatch(n) or "__" in n]
        if odd:
            raise ValidationError({"equal": f"Not label names: {', '.join(odd)}."})

    @cached_property
    def parsed_source(self) -> list:
        return label_matchers.parse(self.source_matchers)

    @cached_property
    def parsed_target(self) -> list:
        return label_matchers.parse(self.target_matchers)

    def equal_labels(self) -> list[str]:
        return [name for name in self.equal.replace(",", " ").split() if name]
