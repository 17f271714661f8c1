"""Admin for teams, rotations, schedules, overrides and temporary schedules: who is on call now
on every list, a week or month rota of each schedule and rotation, a quick "X covers Y
tonight" form, and a preview of what a change does to the next 4 weeks before it is saved."""

from datetime import datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.html import format_html

from core.admin_inlines import ReadOnlyAdmin, ReadOnlyTabularInline
from core.time_windows import local_instant
from devices.models import Person

from . import calendar, rotations
from .models import (
    CalendarFeed,
    OnCallShift,
    Override,
    Rotation,
    RotationMember,
    Schedule,
    ScheduleRule,
    ShiftNotice,
    Team,
    TemporarySchedule,
    TemporaryShift,
)
from .plans import plans, read, segments
from .rota import by_day, day_bounds, when
from .who import UnknownSubject, stretches, who_is_on_call

PREVIEW_DAYS = 28


def on_call_text(kind: str, pk: int) -> str:
    try:
        answer = who_is_on_call(kind, pk)
    except UnknownSubject:
        return "—"
    return ", ".join(chosen.name for chosen in answer.people) or "nobody"


class RotaPages:
    """The rota page, the preview of a change, and who is on call now, for a schedule or a
    rotation admin (`kind`)."""

    kind = ""
    change_form_template = "admin/oncall/change_form.html"

    @admin.display(description="on call now")
    def on_call_now(self, obj):
        return on_call_text(self.kind, obj.pk) if obj.pk else "—"

    @admin.display(description="next change")
    def next_change(self, obj):
        answer = who_is_on_call(self.kind, obj.pk)
        tz = plans()[(self.kind, obj.pk)].tz
        return when(answer.changes_at, answer.at, tz) if answer.changes_at else "—"

    def get_urls(self):
        name = f"oncall_{self.kind}"
        return [
            path("<path:object_id>/rota/", self.admin_site.admin_view(self.rota_view),
                 name=f"{name}_rota"),
            path("<path:object_id>/preview/", self.admin_site.admin_view(self.preview_view),
                 name=f"{name}_preview"),
            *super().get_urls(),
        ]  # fmt: skip

    def subject(self, request, object_id):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No {self.kind} {object_id}.")
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        return obj, plans()[(self.kind, obj.pk)].tz

    def rota_view(self, request, object_id):
        """A week (or, with ?weeks=5, a month) from the Monday of ?start= (today)."""
        obj, tz = self.subject(request, object_id)
        weeks = 5 if request.GET.get("weeks") == "5" else 1
        today = timezone.now().astimezone(tz).date()
        asked = parse_date(request.GET.get("start") or "") or today
        first = asked - timedelta(days=asked.weekday())
        count = 7 * weeks
        start, end = day_bounds(first, tz)[0], day_bounds(first + timedelta(days=count - 1), tz)[1]
        days = by_day(stretches(self.kind, obj.pk, start, end), tz, first, count)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta, "original": obj, "title": f"Rota of {obj}", "crumb": "Rota",
            "kind": self.kind, "days": days, "today": today, "weeks": weeks, "tz": tz.key,
            "before": (first - timedelta(days=count)).isoformat(),
            "after": (first + timedelta(days=count)).isoformat(),
            "overrides": self.overrides_between(obj, start, end),
            "on_call_now": on_call_text(self.kind, obj.pk),
        }  # fmt: skip
        return TemplateResponse(request, "admin/oncall/rota.html", context)

    def overrides_between(self, obj, start, end):
        if self.kind != "schedule":
            return []
        return list(obj.overrides.filter(starts_at__lt=end, ends_at__gt=start)
                    .select_related("person", "replaces"))  # fmt: skip

    def preview_view(self, request, object_id):
        """The change form posted here: saved inside a transaction that is rolled back, so the
        next 4 weeks can be shown before and after; nothing is kept, not even the message."""
        obj, tz = self.subject(request, object_id)
        if request.method != "POST":
            return HttpResponseRedirect("../change/")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        start = timezone.now()
        end = start + timedelta(days=PREVIEW_DAYS)
        before = segments(read()[(self.kind, obj.pk)], start, end)
        with transaction.atomic():
            response = self.changeform_view(request, object_id)
            saved = response.status_code == 302
            after = segments(read()[(self.kind, obj.pk)], start, end) if saved else []
            transaction.set_rollback(True)
        list(messages.get_messages(request))  # "changed successfully": it was not
        if not saved:
            return response  # the form again, with what is wrong
        first = start.astimezone(tz).date()
        old, new = (by_day(found, tz, first, PREVIEW_DAYS + 1) for found in (before, after))
        changed = [(day, was, now) for (day, was), (_, now) in zip(old, new, strict=True)
                   if who(was) != who(now)]  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta, "original": obj, "crumb": "Preview",
            "title": f"Preview of the change to {obj}",
            "changed": changed, "days": PREVIEW_DAYS, "tz": tz.key,
            "fields": [(key, value) for key, values in request.POST.lists() for value in values
                       if key not in ("_preview", "csrfmiddlewaretoken")],
        }  # fmt: skip
        return TemplateResponse(request, "admin/oncall/preview.html", context)


def who(entries) -> list:
    """A day's entries as people read the change: who, from when to when (not why)."""
    return [(e.starts, e.ends, [name for name, _ in e.people]) for e in entries]


class RotationMemberInline(admin.TabularInline):
    model = RotationMember
    fields = ["position", "person"]
    extra = 1
    verbose_name_plural = (
        "participants, in order (change the numbers to reorder: whoever is on call now stays "
        "on call until the next hand-off)"
    )


@admin.register(Rotation)
class RotationAdmin(RotaPages, admin.ModelAdmin):
    kind = "rotation"
    list_display = ["name", "team", "shift", "participant_count", "on_call_now", "next_change"]
    list_filter = ["team"]
    search_fields = ["name"]
    inlines = [RotationMemberInline]
    fields = ["name", "team", "time_zone", "start_date", "handoff_time", "shift_unit",
              "shift_length", "on_call_now"]  # fmt: skip
    readonly_fields = ["on_call_now"]

    @admin.display(description="shifts")
    def shift(self, rotation):
        unit = rotation.shift_unit if rotation.shift_length != 1 else rotation.shift_unit[:-1]
        return f"{rotation.shift_length} {unit} from {rotation.handoff_time:%H:%M}"

    @admin.display(description="participants")
    def participant_count(self, rotation):
        return rotation.members.count()

    def save_related(self, request, form, formsets, change):
        """Whoever is on call before the participants change stays on call after it."""
        now = timezone.now()
        before = rotations.plan_of(form.instance).turn(now) if change else None
        super().save_related(request, form, formsets, change)
        rotations.keep_on_call(form.instance, before, now)


class ScheduleRuleInline(admin.TabularInline):
    model = ScheduleRule
    fields = ["layer", "name", "person", "rotation", "days", "start_time", "end_time",
              "active_from", "active_until"]  # fmt: skip
    extra = 1


class UpcomingOverrideInline(ReadOnlyTabularInline):
    """The overrides not ended yet, read only here: add them with "Cover a shift"."""

    model = Override
    fk_name = "schedule"
    fields = ["kind", "person", "replaces", "starts_at", "ends_at", "note", "created_by"]
    verbose_name_plural = "overrides not ended yet"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(ends_at__gt=timezone.now())


@admin.register(Schedule)
class ScheduleAdmin(RotaPages, admin.ModelAdmin):
    kind = "schedule"
    list_display = ["name", "team", "time_zone", "on_call_now", "next_change", "fallback_person"]
    list_filter = ["team"]
    search_fields = ["name", "description"]
    fields = ["name", "team", "description", "time_zone", "fallback_person", "reminder_minutes",
              "handoff_message", "on_call_now"]  # fmt: skip
    readonly_fields = ["on_call_now"]
    inlines = [ScheduleRuleInline, UpcomingOverrideInline]

    def get_urls(self):
        cover = self.admin_site.admin_view(self.cover_view)
        return [path("<path:object_id>/cover/", cover, name="oncall_schedule_cover"),
                *super().get_urls()]  # fmt: skip

    def cover_view(self, request, object_id):
        """The quick override: "Carol covers Bob tonight 19:00–07:00"."""
        schedule, tz = self.subject(request, object_id)
        if not request.user.has_perm("oncall.add_override"):
            raise PermissionDenied
        with timezone.override(tz):  # the form's times are the schedule's wall clock
            form = CoverForm(schedule, request.POST or None, initial=cover_initial(schedule, tz))
            if request.method == "POST" and form.is_valid():
                override = form.save(request.user)
                self.message_user(
                    request,
                    f"Saved: {override.describe()}, "
                    f"{when(override.starts_at, override.starts_at, tz)}–"
                    f"{when(override.ends_at, override.starts_at, tz)} ({tz.key}).",
                )
                rota = reverse("admin:oncall_schedule_rota", args=[schedule.pk])
                day = override.starts_at.astimezone(tz).date().isoformat()
                return HttpResponseRedirect(f"{rota}?start={day}")
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta, "original": schedule, "form": form, "tz": tz.key,
                "title": f"Cover a shift in {schedule}", "crumb": "Cover a shift",
            }  # fmt: skip
            # Rendered here: its times are shown on the schedule's wall clock too.
            return TemplateResponse(request, "admin/oncall/cover.html", context).render()


def cover_initial(schedule: Schedule, tz) -> dict:
    """Tonight 19:00 to tomorrow 07:00, covering whoever is on call at 19:00."""
    today = timezone.now().astimezone(tz).date()
    starts = local_instant(datetime.combine(today, time(19)), tz)
    ends = local_instant(datetime.combine(today + timedelta(days=1), time(7)), tz)
    on_call = who_is_on_call("schedule", schedule.pk, starts).people
    return {"kind": Override.Kind.REPLACE, "starts_at": starts, "ends_at": ends,
            "replaces": on_call[0].person_id if on_call else None}  # fmt: skip


class CoverForm(forms.Form):
    kind = forms.ChoiceField(choices=Override.Kind.choices)
    person = forms.ModelChoiceField(
        Person.objects.filter(active=True), required=False, label="who covers, or is added"
    )
    replaces = forms.ModelChoiceField(
        Person.objects.all(), required=False, label="for whom, or who is off"
    )
    starts_at = forms.DateTimeField(label="from", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))  # fmt: skip
    ends_at = forms.DateTimeField(label="until", widget=forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))  # fmt: skip
    note = forms.CharField(required=False, max_length=200)

    def __init__(self, schedule, *args, **kwargs):
        self.schedule = schedule
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        self.override = Override(schedule=self.schedule, **data)
        try:
            self.override.full_clean(exclude=["created_by"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None
        return data

    def save(self, user) -> Override:
        self.override.created_by = user.get_full_name() or user.get_username()
        self.override.save()
        return self.override


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "member_count", "default_policy", "on_call_now"]
    search_fields = ["name"]
    filter_horizontal = ["members"]
    fields = ["name", "members", "default_policy", "on_call_now"]
    readonly_fields = ["on_call_now"]

    @admin.display(description="members")
    def member_count(self, team):
        return team.members.count()

    @admin.display(description="on call now")
    def on_call_now(self, team):
        if not team.pk:
            return "—"
        parts = [f"{s.name}: {on_call_text('schedule', s.pk)}" for s in team.schedules.all()]
        parts += [f"{r.name}: {on_call_text('rotation', r.pk)}" for r in team.rotations.all()]
        return "; ".join(parts) or "no schedules or rotations"


@admin.register(Override)
class OverrideAdmin(admin.ModelAdmin):
    list_display = ["schedule", "describe", "starts_at", "ends_at", "note", "created_by"]
    list_filter = ["schedule", "kind"]
    search_fields = ["note", "person__name", "replaces__name"]
    date_hierarchy = "starts_at"
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user.get_full_name() or request.user.get_username()
        super().save_model(request, obj, form, change)


class TemporaryShiftInline(admin.TabularInline):
    model = TemporaryShift
    extra = 1


@admin.register(TemporarySchedule)
class TemporaryScheduleAdmin(admin.ModelAdmin):
    list_display = ["schedule", "starts_at", "ends_at", "note"]
    list_filter = ["schedule"]
    inlines = [TemporaryShiftInline]


@admin.register(OnCallShift)
class OnCallShiftAdmin(ReadOnlyAdmin):
    """The record of who was on call: written by the system, read here."""

    list_display = ["person_name", "schedule", "rotation", "starts_at", "ends_at", "why"]
    list_filter = ["schedule", "rotation"]
    search_fields = ["person_name", "why"]
    date_hierarchy = "starts_at"


@admin.register(CalendarFeed)
class CalendarFeedAdmin(admin.ModelAdmin):
    """Calendar links: issued here (the URL shown once), revoked here."""

    list_display = ["__str__", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    fields = ["person", "schedule", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_change_permission(self, request, obj=None):
        return False  # a link is issued or revoked, never edited into someone else's

    def save_model(self, request, obj, form, change):
        token = obj.issue()
        super().save_model(request, obj, form, change)
        messages.warning(request, format_html(
            "Calendar link for {}: <code>{}</code> — copy it now (subscribe to it in Google "
            "Calendar, Outlook or Thunderbird); it is stored only as a hash and cannot be "
            "shown again.", obj.person or obj.schedule, calendar.url(token)))  # fmt: skip

    @admin.action(description="Revoke (the link stops working now)")
    def revoke(self, request, queryset):
        revoked = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} calendar link(s).")


@admin.register(ShiftNotice)
class ShiftNoticeAdmin(ReadOnlyAdmin):
    """Reminders and hand-off messages, as they were sent (or why not)."""

    list_display = ["shift_starts_at", "kind", "person", "schedule", "method", "status", "answer"]
    list_filter = ["kind", "status", "schedule"]
    search_fields = ["person__name", "text", "answer"]
    date_hierarchy = "shift_starts_at"
