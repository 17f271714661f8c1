"""Admin for channels (config checked per kind, a preview, a test message) and the read-only
delivery audit."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template import TemplateSyntaxError
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from .delivery import send_test
from .messages import build_message, sample_alarm
from .models import Delivery, NotificationChannel
from .transports import CHANNEL_KINDS, transport_class
from .transports.base import ACKNOWLEDGED, NOTIFY, RESOLVED

SAMPLE_ACK_URL = "https://alarms.example.org/a/sample-link"


def report_test(request, results) -> None:
    """Show each answer of a test send as a success or an error message."""
    for what, answer, ok in results:
        level = messages.SUCCESS if ok else messages.ERROR
        messages.add_message(request, level, f"{what}: {'sent' if ok else 'failed'}: {answer}")


class ChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "enabled", "config", "subject_template", "body_template"]
        widgets = {
            "config": forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField"}),
            "subject_template": forms.Textarea(attrs={"rows": 2, "cols": 80}),
            "body_template": forms.Textarea(attrs={"rows": 10, "cols": 80}),
        }


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "enabled", "destination"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    actions = ["send_test_message"]
    readonly_fields = ["config_keys", "preview"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "config", "config_keys"]}),
        ("Message", {"fields": ["subject_template", "body_template", "preview"]}),
    ]

    @admin.display(description="where")
    def destination(self, channel):
        return channel.transport().destination()

    @admin.display(description="config keys")
    def config_keys(self, channel):
        kinds = [channel.kind] if channel.pk else list(CHANNEL_KINDS)
        return format_html_join(
            "",
            "<p><strong>{}</strong>: {}</p>",
            ((kind, transport_class(kind).config_help()) for kind in kinds),
        )

    @admin.display(description="preview on a sample alarm")
    def preview(self, channel):
        if not channel.pk:
            return "Saved channels show a preview here."
        transport = channel.transport()
        parts = []
        for event, ack_url in [(NOTIFY, SAMPLE_ACK_URL), (ACKNOWLEDGED, ""), (RESOLVED, "")]:
            if event != NOTIFY and event not in transport.follows_up:
                continue
            alarm = sample_alarm()
            alarm.acknowledged_by = alarm.resolved_by = "Alice Adams"
            try:
                message = build_message(
                    alarm, transport, event=event, ack_url=ack_url, channel=channel
                )
            except TemplateSyntaxError as exc:
                return format_html("<p class='errornote'>Template error: {}</p>", exc)
            parts.append((event, message.subject, message.text))
        return format_html_join(
            "", "<h4>{}</h4><pre style='white-space: pre-wrap'>{}\n\n{}</pre>", parts
        )

    @admin.action(description="Send a test message (and show the provider's answer)")
    def send_test_message(self, request, queryset):
        for channel in queryset:
            report_test(request, send_test(channel=channel))

    def get_urls(self):
        test = self.admin_site.admin_view(self.send_test_view)
        return [
            path("<int:pk>/send-test/", test, name="notifications_notificationchannel_test"),
            *super().get_urls(),
        ]

    def send_test_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        channel = get_object_or_404(NotificationChannel, pk=pk)
        if not self.has_change_permission(request, channel):
            raise PermissionDenied
        report_test(request, send_test(channel=channel))
        return redirect(reverse("admin:notifications_notificationchannel_change", args=[pk]))


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "alarm", "event", "step_number", "round", "method", "target_name",
        "address", "status", "attempts", "provider_status", "latency_ms", "sent_at",
    ]  # fmt: skip
    list_filter = ["status", "event", "method"]
    search_fields = ["address", "person__name", "channel__name", "alarm__title"]
    list_select_related = ["alarm", "person", "channel"]
    date_hierarchy = "created_at"

    @admin.display(description="step", ordering="step")
    def step_number(self, delivery):
        return delivery.step + 1

    @admin.display(description="target")
    def target_name(self, delivery):
        return delivery.person or delivery.channel or delivery.target

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
