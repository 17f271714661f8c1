"""Admin for sites, rooms, people and devices. A device's token is shown once, when issued."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from notifications.admin import report_test
from notifications.delivery import throttle
from notifications.delivery.sample_sends import send_test

from .models import Device, NotificationRule, PanelEventCode, PanelZone, Person, Room, Site


class RoomInline(admin.TabularInline):
    model = Room
    extra = 1


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "address"]
    search_fields = ["name", "address"]
    inlines = [RoomInline]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "site"]
    list_filter = ["site"]
    search_fields = ["name", "site__name"]


class NotificationRuleInline(admin.TabularInline):
    """The person's own way to be reached, for steps whose methods say "personal"."""

    model = NotificationRule
    extra = 1
    verbose_name = "notification rule (for steps that say personal)"


class MutedFilter(admin.SimpleListFilter):
    title = "muted (replied STOP)"
    parameter_name = "muted"

    def lookups(self, request, model_admin):
        return [("yes", "SMS or Signal muted")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(sms_opted_out_at=None, signal_opted_out_at=None)
        return queryset


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "phone", "signal_number", "user", "active", "muted"]
    list_filter = ["active", MutedFilter]
    search_fields = ["name", "email", "phone"]
    autocomplete_fields = ["user"]
    actions = ["send_test_message", "issue_ntfy_topics"]
    inlines = [NotificationRuleInline]
    readonly_fields = ["recent_volume"]

    @admin.display(description="recent messages per contact point")
    def recent_volume(self, person):
        """What was sent to each contact point lately, against its limits (`throttle`)."""
        lines = []
        for method, address, windows, held in throttle.volume(person):
            counts = ", ".join(f"{count} in {throttle.span(seconds)}" for seconds, count in windows)
            limits = ", ".join(map(str, throttle.limits_for(method))) or "no limit"
            lines.append(f"{method} {address}: {counts} (limits: {limits})"
                         + (f"; {held} held back now" if held else ""))  # fmt: skip
        return format_html_join("\n", "<div>{}</div>", ((line,) for line in lines)) or "—"

    @admin.display(description="muted")
    def muted(self, person):
        """What the person turned off with a STOP reply (an operator may clear it)."""
        return ", ".join(m for m, f in Person.OPT_OUT_FIELDS.items() if getattr(person, f)) or "—"

    @admin.action(description="Issue push topics (ntfy) nobody can guess")
    def issue_ntfy_topics(self, request, queryset):
        for person in queryset:
            person.issue_ntfy_topic()
            person.save(update_fields=["ntfy_topic"])
            messages.info(request, f"{person.name}: subscribe the ntfy app to {person.ntfy_topic}")

    @admin.action(description="Send a test message to their contact points")
    def send_test_message(self, request, queryset):
        for person in queryset:
            report_test(request, send_test(person=person))


def _show_token(request, device: Device, token: str) -> None:
    url = settings.PUBLIC_BASE_URL + reverse("yealink-alarm") + f"?token={token}"
    if device.mac_address:
        url += "&mac=$mac"
    grace = ""
    if until := device.previous_token_valid_until:
        grace = f" The old token keeps working until {until:%Y-%m-%d %H:%M %Z}."
    messages.warning(
        request,
        format_html(
            "Token for {}: <code>{}</code> — copy it now, it is stored only as a hash and "
            "cannot be shown again. Yealink Action URL: <code>{}</code>{}",
            device.name,
            token,
            url,
            grace,
        ),
    )


class PanelZoneInline(admin.TabularInline):
    model = PanelZone
    fk_name = "panel"
    extra = 1
    autocomplete_fields = ["room"]


class DeviceForm(forms.ModelForm):
    """A panel's key is never shown again once saved; left empty, the saved one stays."""

    sia_key = forms.CharField(
        label="Encryption key", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=Device._meta.get_field("sia_key").help_text
        + " Saved keys are not shown; leave empty to keep it.",
    )  # fmt: skip

    forget_sia_key = forms.BooleanField(
        label="Remove the saved key", required=False,
        help_text="The panel sends in the clear from now on.",
    )  # fmt: skip

    class Meta:
        model = Device
        fields = "__all__"  # noqa: DJ007 (the admin picks the fields it shows)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("forget_sia_key"):
            cleaned["sia_key"] = ""
        elif not cleaned.get("sia_key") and self.instance.pk:
            cleaned["sia_key"] = self.instance.sia_key
        return cleaned


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    form = DeviceForm
    list_display = [
        "name", "kind", "site", "room", "person", "enabled", "last_seen_at",
        "rate_limit_per_minute", "default_policy",
    ]  # fmt: skip
    list_filter = ["kind", "enabled", "site"]
    search_fields = ["name", "person__name", "room__name", "site__name"]
    autocomplete_fields = ["site", "room", "person"]
    readonly_fields = ["last_seen_at", "created_at", "previous_token_valid_until"]
    actions = ["rotate_tokens_with_grace", "rotate_tokens", "end_grace"]

    def get_inlines(self, request, obj):
        return [PanelZoneInline] if obj and obj.kind == Device.Kind.SIA_PANEL else []

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            _show_token(request, obj, obj.issued_token)

    @admin.action(description="Issue a new token (the old one keeps working for a while)")
    def rotate_tokens_with_grace(self, request, queryset):
        grace = timedelta(hours=settings.DEVICE_TOKEN_GRACE_HOURS)
        for device in queryset:
            token = device.rotate_token(grace)
            device.save(update_fields=Device.TOKEN_FIELDS)
            _show_token(request, device, token)

    @admin.action(description="Issue a new token (the old one stops working now)")
    def rotate_tokens(self, request, queryset):
        for device in queryset:
            token = device.rotate_token()
            device.save(update_fields=Device.TOKEN_FIELDS)
            _show_token(request, device, token)

    @admin.action(description="Stop old tokens now (end the grace period)")
    def end_grace(self, request, queryset):
        for device in queryset.exclude(previous_token_hash=None):
            device.previous_token_hash = device.previous_token_valid_until = None
            device.save(update_fields=Device.TOKEN_FIELDS)


@admin.register(PanelEventCode)
class PanelEventCodeAdmin(admin.ModelAdmin):
    """Alarm panels' event codes where the built-in table says otherwise or nothing."""

    list_display = ["code", "action", "title", "severity", "condition"]
    list_filter = ["action", "severity"]
    search_fields = ["code", "title", "condition"]
