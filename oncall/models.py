"""Who is on call: teams, rotations, schedules with their layered rules, overrides and
temporary schedules, and the record of who was on call when.

Times of day are wall-clock times in the schedule's (or rotation's) time zone, so a night
shift starts at 19:00 on both sides of a daylight-saving change; overrides and temporary
schedules are between two instants.
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core.config_cache import watch
from core.time_windows import DAY_NAMES, default_time_zone, validate_days, validate_time_zone
from core.tokens import hash_token, new_token


class Team(models.Model):
    name = models.CharField(max_length=200, unique=True)
    members = models.ManyToManyField("devices.Person", blank=True, related_name="teams")
    default_policy = models.ForeignKey(
        "escalation.EscalationPolicy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Where a schedule of this team with nobody on call and no fallback person "
        "sends its step: the people and channels of this policy's first step.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Rotation(models.Model):
    class Unit(models.TextChoices):
        HOURS = "hours"
        DAYS = "days"
        WEEKS = "weeks"

    name = models.CharField(max_length=200, unique=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="rotations"
    )
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone]
    )
    start_date = models.DateField(help_text="The first shift starts on this day…")
    handoff_time = models.TimeField(
        "hand-off time", help_text="…at this time; every hand-off is at this wall-clock time."
    )
    shift_unit = models.CharField(max_length=10, choices=Unit.choices, default=Unit.DAYS)
    shift_length = models.PositiveIntegerField(
        default=1, help_text="Shift length in the unit: 12 hours, 1 day, 2 weeks."
    )
    # Added to the shift number to find the participant: reordering sets it so that whoever
    # is on call stays on call (`rotations.keep_on_call`).
    offset = models.IntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.shift_length is not None and self.shift_length < 1:
            raise ValidationError({"shift_length": "A shift is at least one hour, day or week."})


class RotationMember(models.Model):
    """A place in a rotation's order (one person may hold several)."""

    rotation = models.ForeignKey(Rotation, on_delete=models.CASCADE, related_name="members")
    person = models.ForeignKey("devices.Person", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["rotation", "position", "pk"]
        verbose_name = "participant"

    def __str__(self):
        return f"{self.rotation.name} #{self.position + 1}: {self.person}"


class Schedule(models.Model):
    name = models.CharField(max_length=200, unique=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="schedules"
    )
    description = models.TextField(blank=True)
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone]
    )
    fallback_person = models.ForeignKey(
        "devices.Person",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Paged when nobody is on call; without one, the team's default policy's "
        "first step is.",
    )
    reminder_minutes = models.PositiveIntegerField(
        default=60,
        help_text="Remind each person this long before their shift starts (0: no reminders).",
    )
    handoff_message = models.BooleanField(
        "hand-off message",
        default=True,
        help_text="When a shift starts, tell the incoming person which alarms of the team "
        "are still open.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ScheduleRule(models.Model):
    """Someone (a person, or whoever a rotation has on call) on duty on some days between two
    times of day. Of the layers with a rule holding, the highest alone decides."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=100, blank=True, help_text="e.g. Night shift")
    layer = models.IntegerField(
        default=0, help_text="Higher layers win: a holiday layer (1) over the weekly one (0)."
    )
    person = models.ForeignKey(
        "devices.Person", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    rotation = models.ForeignKey(
        Rotation, null=True, blank=True, on_delete=models.PROTECT, related_name="rules"
    )
    days = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_days],
        help_text=f"Days the window starts on, e.g. mon-fri ({', '.join(DAY_NAMES)}); "
        "empty: every day.",
    )
    start_time = models.TimeField(null=True, blank=True, help_text="e.g. 19:00; empty: all day.")
    end_time = models.TimeField(
        null=True,
        blank=True,
        help_text="e.g. 07:00; not after the start: it ends the next day (and belongs to the "
        "day it starts).",
    )
    active_from = models.DateField(
        null=True, blank=True, help_text="First day it holds (a holiday layer); empty: always."
    )
    active_until = models.DateField(null=True, blank=True, help_text="Last day it holds.")

    class Meta:
        ordering = ["schedule", "-layer", "pk"]

    def __str__(self):
        return self.name or f"{self.schedule.name}: rule {self.pk}"

    def clean(self):
        if (self.person_id is None) == (self.rotation_id is None):
            raise ValidationError("A rule names a person or a rotation (one of them).")
        if (self.start_time is None) != (self.end_time is None):
            raise ValidationError("Give both times of the window, or neither (all day).")
        if self.active_from and self.active_until and self.active_until < self.active_from:
            raise ValidationError({"active_until": "The last day is before the first."})


class Override(models.Model):
    """Between two instants: add a person to whoever is on call, remove one, or replace one by
    another (only while the replaced person is on call)."""

    class Kind(models.TextChoices):
        ADD = "add"
        REMOVE = "remove"
        REPLACE = "replace"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="overrides")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REPLACE)
    person = models.ForeignKey(
        "devices.Person",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Who is added, or who covers.",
    )
    replaces = models.ForeignKey(
        "devices.Person",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Who is removed or covered for.",
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)
    created_by = models.CharField(max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["schedule", "starts_at", "pk"]
        indexes = [models.Index(fields=["schedule", "ends_at"])]

    def __str__(self):
        return f"{self.schedule.name}: {self.describe()}"

    def describe(self) -> str:
        if self.kind == self.Kind.ADD:
            return f"{self.person} added"
        if self.kind == self.Kind.REMOVE:
            return f"{self.replaces} off"
        return f"{self.person} covers {self.replaces}"

    def clean(self):
        wanted = {
            self.Kind.ADD: (True, False),
            self.Kind.REMOVE: (False, True),
            self.Kind.REPLACE: (True, True),
        }[self.kind]
        if ((self.person_id is not None), (self.replaces_id is not None)) != wanted:
            raise ValidationError(
                {
                    self.Kind.ADD: "An added override names who is added (and nobody replaced).",
                    self.Kind.REMOVE: "A removing override names who is off (and nobody else).",
                    self.Kind.REPLACE: "A replacing override names who covers and for whom.",
                }[self.kind]
            )
        if self.person_id and self.person_id == self.replaces_id:
            raise ValidationError("Someone cannot cover for themselves.")
        if self.starts_at and self.ends_at:
            if self.ends_at <= self.starts_at:
                raise ValidationError("An override ends after it starts.")
            self._refuse_overlap()

    def _refuse_overlap(self):
        """Two overrides involving one person at once would leave the answer to their order."""
        people = [pk for pk in (self.person_id, self.replaces_id) if pk]
        others = Override.objects.filter(
            schedule_id=self.schedule_id, starts_at__lt=self.ends_at, ends_at__gt=self.starts_at
        ).filter(Q(person_id__in=people) | Q(replaces_id__in=people))
        clash = others.exclude(pk=self.pk).first()
        if clash:
            raise ValidationError(
                f"It overlaps another override for the same person ({clash.describe()}, "
                f"{clash.starts_at:%Y-%m-%d %H:%M}–{clash.ends_at:%Y-%m-%d %H:%M} UTC)."
            )


class TemporarySchedule(models.Model):
    """Inside its window only its shifts count: no rules, no overrides (a ward closed over
    Christmas, a festival weekend)."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="temporaries")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["schedule", "starts_at"]

    def __str__(self):
        return f"{self.schedule.name}: temporary {self.starts_at:%Y-%m-%d}–{self.ends_at:%Y-%m-%d}"

    def clean(self):
        if self.starts_at and self.ends_at:
            if self.ends_at <= self.starts_at:
                raise ValidationError("A temporary schedule ends after it starts.")
            clash = TemporarySchedule.objects.filter(
                schedule_id=self.schedule_id, starts_at__lt=self.ends_at, ends_at__gt=self.starts_at
            ).exclude(pk=self.pk)
            if clash.exists():
                raise ValidationError("It overlaps another temporary schedule of this schedule.")


class TemporaryShift(models.Model):
    temporary = models.ForeignKey(
        TemporarySchedule, on_delete=models.CASCADE, related_name="shifts"
    )
    person = models.ForeignKey("devices.Person", on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()

    class Meta:
        ordering = ["temporary", "starts_at"]

    def __str__(self):
        return f"{self.person}: {self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%Y-%m-%d %H:%M}"

    def clean(self):
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError("A shift ends after it starts.")
        window = self.temporary if self.temporary_id else None
        if (
            window
            and self.starts_at
            and self.ends_at
            and (self.starts_at < window.starts_at or self.ends_at > window.ends_at)
        ):
            raise ValidationError("A shift lies inside its temporary schedule's window.")


class OnCallShift(models.Model):
    """Who was on call, written as it happened: the past is read from here, never recomputed
    from rules that may have changed since. `ends_at` is empty while the shift goes on."""

    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.CASCADE, related_name="history"
    )
    rotation = models.ForeignKey(
        Rotation, null=True, blank=True, on_delete=models.CASCADE, related_name="history"
    )
    person = models.ForeignKey(
        "devices.Person", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    person_name = models.CharField(max_length=200)
    why = models.CharField(max_length=300, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["starts_at", "pk"]
        verbose_name = "recorded shift"
        indexes = [
            models.Index(fields=["schedule", "starts_at"]),
            models.Index(fields=["rotation", "starts_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(schedule__isnull=False, rotation__isnull=True)
                | Q(schedule__isnull=True, rotation__isnull=False),
                name="shift_of_schedule_or_rotation",
            )
        ]

    def __str__(self):
        return f"{self.person_name} {self.starts_at:%Y-%m-%d %H:%M}–"


class ShiftNotice(models.Model):
    """A reminder before a shift, or a hand-off message as it starts: one row per person,
    shift and kind, written before it is sent, so no one is told twice."""

    class Kind(models.TextChoices):
        REMINDER = "reminder"
        HANDOFF = "handoff", "hand-off"

    class Status(models.TextChoices):
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="notices")
    person = models.ForeignKey("devices.Person", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    shift_starts_at = models.DateTimeField()
    method = models.CharField(max_length=20, blank=True)
    address = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENDING)
    attempts = models.PositiveIntegerField(default=0)
    text = models.TextField(blank=True)
    answer = models.TextField(blank=True, help_text="What the provider said, or the error.")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-shift_starts_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "person", "kind", "shift_starts_at"], name="one_notice_each"
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()} for {self.person} ({self.schedule})"


class Recording(models.Model):
    """How far the record of a schedule or rotation reaches: `OnCallShift` rows say who was on
    call from `since` to `until`. Kept apart from the schedule, whose saves must not touch it."""

    kind = models.CharField(max_length=10)  # schedule | rotation
    subject_id = models.PositiveIntegerField()
    since = models.DateTimeField()
    until = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject_id"], name="one_recording_each")
        ]

    def __str__(self):
        return f"{self.kind} {self.subject_id}: {self.since:%Y-%m-%d %H:%M}–{self.until:%H:%M}"


class CalendarFeed(models.Model):
    """A calendar URL (iCalendar): a person's shifts, or a schedule's whole rota, for the next
    weeks. Its token is in the URL, as calendar apps need it: stored as a hash, shown once,
    revocable."""

    person = models.ForeignKey(
        "devices.Person", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Their shifts in every schedule.",
    )  # fmt: skip
    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.CASCADE, related_name="feeds",
        help_text="Everyone's shifts in this schedule.",
    )  # fmt: skip
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "calendar link"
        constraints = [
            models.CheckConstraint(
                condition=Q(person__isnull=False, schedule__isnull=True)
                | Q(person__isnull=True, schedule__isnull=False),
                name="feed_of_person_or_schedule",
            )
        ]

    def __str__(self):
        return f"Calendar of {self.person or self.schedule}"

    def clean(self):
        if (self.person_id is None) == (self.schedule_id is None):
            raise ValidationError("A calendar link is a person's or a schedule's (one of them).")

    def issue(self) -> str:
        """A new token for this (unsaved) link; the plaintext is returned only here."""
        token = new_token()
        self.token_hash = hash_token(token)
        return token

    @classmethod
    def by_token(cls, token: str) -> "CalendarFeed | None":
        return cls.objects.filter(token_hash=hash_token(token), revoked_at=None).first()


watch(Team, Rotation, RotationMember, Schedule, ScheduleRule, Override, TemporarySchedule,
      TemporaryShift, through=[Team.members.through])  # fmt: skip
