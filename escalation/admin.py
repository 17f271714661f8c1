"""Admin for escalation policies (with their steps), routing rules, silences and inhibitions,
and the "test routing" page: which rule, policy and silence an alarm would meet, sending
nothing."""

import uuid
from datetime import timedelta

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import F, Max
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from alarms.models import Alarm, Severity
from devices.models import Device, Room, Site

from .dryrun import dry_run
from .models import EscalationPolicy, EscalationStep, Inhibition, RoutingRule, Silence, SourceKind


class StepNumberField(forms.IntegerField):
    """The step's `order` as people count: the form shows and takes 1 for the first step."""

    def prepare_value(self, value):
        return value + 1 if isinstance(value, int) else value

    def to_python(self, value):
        number = super().to_python(value)
        if number is None:
            return None
        if number < 1:
            raise ValidationError("Steps are numbered from 1.")
        return number - 1


class StepForm(forms.ModelForm):
    order = StepNumberField(label="Step", help_text="1 runs first.")

    class Meta:
        model = EscalationStep
        fields = ["order", "delay_seconds", "persons", "schedules", "rotations", "methods",
                  "channels"]  # fmt: skip


class StepInline(admin.StackedInline):
    model = EscalationStep
    form = StepForm
    extra = 0
    filter_horizontal = ["persons", "schedules", "rotations", "channels"]
    # Django's stacked inline with each step's heading numbered from 1.
    template = "admin/escalation/escalationpolicy/step_inline.html"


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "step_count", "repeat_count", "repeat_after_seconds",
                    "is_default"]  # fmt: skip
    list_filter = ["team"]
    search_fields = ["name", "description"]
    inlines = [StepInline]

    @admin.display(description="steps")
    def step_count(self, policy):
        return policy.steps.count()

    def save_formset(self, request, form, formset, change):
        if formset.model is EscalationStep:
            make_room_for_renumbered_steps(formset)
        super().save_formset(request, form, formset, change)


def make_room_for_renumbered_steps(formset) -> None:
    """Steps are saved one at a time and the database checks each number at once, so two steps
    swapped in one save would meet: first move every renumbered or deleted step past any number
    in use or asked for (inside the admin's transaction)."""
    moving = [f.instance.pk for f in formset.initial_forms
              if "order" in f.changed_data or f in formset.deleted_forms]  # fmt: skip
    if not moving:
        return
    stored = formset.instance.steps.aggregate(top=Max("order"))["top"] or 0
    asked = [f.cleaned_data.get("order") or 0 for f in formset.forms if f.cleaned_data]
    past = max(stored, *asked) + 1
    EscalationStep.objects.filter(pk__in=moving).update(order=F("order") + past)


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ["order", "name", "enabled", "matches", "action", "continue_matching"]
    list_display_links = ["name"]
    list_editable = ["order", "enabled"]
    list_filter = ["enabled", "source", "silence"]
    search_fields = ["name", "matchers"]
    autocomplete_fields = ["device", "policy"]
    fieldsets = [
        (None, {"fields": ["name", "order", "enabled", "team"]}),
        ("Matches", {"fields": ["source", "device", "site", "room", "min_severity", "matchers"]}),
        ("When", {"fields": ["days", "start_time", "end_time", "time_zone", "outside_window"]}),
        ("Does", {"fields": ["policy", "set_severity", "silence", "continue_matching"]}),
    ]

    @admin.display(description="matches")
    def matches(self, rule):
        parts = [rule.source, rule.device, rule.site, rule.room]
        parts = [str(part) for part in parts if part]
        if rule.min_severity:
            parts.append(f"severity ≥ {rule.min_severity}")
        if rule.matchers:
            parts.append(" ".join(str(m) for m in rule.parsed_matchers))
        if rule.days or rule.start_time:
            hours = f"{rule.start_time:%H:%M}–{rule.end_time:%H:%M}" if rule.start_time else ""
            window = f"{rule.days or 'every day'} {hours} {rule.time_zone}".strip()
            parts.append(f"outside {window}" if rule.outside_window else window)
        return "; ".join(parts) or "every alarm"

    @admin.display(description="does")
    def action(self, rule):
        parts = []
        if rule.policy:
            parts.append(f"policy {rule.policy}")
        if rule.set_severity:
            parts.append(f"severity → {rule.set_severity}")
        if rule.silence:
            parts.append("silence")
        return ", ".join(parts)

    def get_urls(self):
        test = self.admin_site.admin_view(self.test_routing)
        return [path("test/", test, name="escalation_routingrule_test"), *super().get_urls()]

    def test_routing(self, request):
        """?alarm=<id> fills the form from a stored alarm; otherwise the form's fields."""
        picked = Alarm.objects.filter(pk=_uuid(request.GET.get("alarm"))).first()
        form = TestRoutingForm(picked_data(picked) if picked else (request.GET or None))
        context = {**self.admin_site.each_context(request), "title": "Test routing", "form": form}
        if form.is_bound and form.is_valid():
            at = form.cleaned_data["at"] or timezone.now()
            context.update(at=at, run=dry_run(form.alarm(), at, replayed=picked))
        context["opts"] = self.model._meta
        return TemplateResponse(request, "admin/escalation/routingrule/test_routing.html", context)


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def picked_data(alarm: Alarm) -> dict:
    """A stored alarm as the test form's data, at the time it was raised."""
    sources = {choice for choice, _ in SourceKind.choices}
    return {
        "title": alarm.title, "severity": alarm.severity,
        "source": alarm.source if alarm.source in sources else SourceKind.API,
        "device": alarm.device_id or "", "site": alarm.site_id or "", "room": alarm.room_id or "",
        "labels": "\n".join(f"{k}={v}" for k, v in (alarm.labels or {}).items()),
        "at": timezone.localtime(alarm.created_at).strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip


class TestRoutingForm(forms.Form):
    title = forms.CharField(initial="Test alarm")
    source = forms.ChoiceField(choices=SourceKind.choices, initial=SourceKind.API)
    device = forms.ModelChoiceField(Device.objects.all(), required=False)
    site = forms.ModelChoiceField(
        Site.objects.all(), required=False, help_text="Default: the device's."
    )
    room = forms.ModelChoiceField(
        Room.objects.all(), required=False, help_text="Default: the device's."
    )
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.CRITICAL)
    labels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), required=False,
        help_text="One name=value per line.",
    )  # fmt: skip
    at = forms.DateTimeField(
        required=False, help_text="When it is raised (server time zone); empty: now.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )  # fmt: skip

    def clean_labels(self) -> dict:
        labels = {}
        for line in self.cleaned_data["labels"].splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise ValidationError(f"{line!r} is not name=value.")
            labels[name.strip()] = value.strip()
        return labels

    def alarm(self) -> Alarm:
        """The alarm as the ingest would build it, not saved."""
        data = self.cleaned_data
        device = data["device"]
        return Alarm(
            title=data["title"], source=data["source"], severity=data["severity"],
            labels=data["labels"], device=device,
            site=data["site"] or (device.site if device else None),
            room=data["room"] or (device.room if device else None),
        )  # fmt: skip


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["pk", "matchers", "starts_at", "ends_at", "active", "created_by", "comment"]
    search_fields = ["matchers", "comment", "created_by"]
    readonly_fields = ["created_by", "created_at"]

    @admin.display(boolean=True)
    def active(self, silence):
        return silence.starts_at <= timezone.now() < silence.ends_at

    def get_changeform_initial_data(self, request):
        now = timezone.now().replace(microsecond=0)
        return {"starts_at": now, "ends_at": now + timedelta(hours=2)}

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user.get_full_name() or request.user.get_username()
        super().save_model(request, obj, form, change)


@admin.register(Inhibition)
class InhibitionAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "source_matchers", "target_matchers", "equal"]
    list_filter = ["enabled"]
    search_fields = ["name", "source_matchers", "target_matchers"]
