"""Admin for channels (config checked per kind, secrets write-only, a preview, a test message)
and the read-only delivery audit."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template import TemplateSyntaxError
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.admin_inlines import ReadOnlyAdmin, ReadOnlyTabularInline

from .delivery.sample_sends import send_test
from .messages import build_message, sample_alarm
from .models import Delivery, DeliveryAttempt, NotificationChannel, ReplyCode
from .transports import CHANNEL_KINDS, transport_class
from .transports.base import ACKNOWLEDGED, NOTIFY, RESOLVED

SAMPLE_ACK_URL = "https://alarms.example.org/a/sample-link"
SECRETS_HELP = (
    "Never shown once saved. Leave a field empty to keep what is stored, type a new value to "
    "replace it, or tick its clear box to remove it."
)
NEW_SECRETS_HELP = "Type the secrets of the channel's kind here; they are never shown once saved."


def report_test(request, results) -> None:
    """Show each answer of a test send as a success or an error message."""
    for what, answer, ok in results:
        level = messages.SUCCESS if ok else messages.ERROR
        messages.add_message(request, level, f"{what}: {'sent' if ok else 'failed'}: {answer}")


def secret_specs(kind: str) -> dict:
    """The config keys this kind keeps secret, by name."""
    return {spec.name: spec for spec in transport_class(kind).config_fields if spec.secret}


def all_secret_specs() -> dict:
    """Every key some kind keeps secret, and the labels of the kinds that do."""
    found = {}
    for kind, (label, _) in CHANNEL_KINDS.items():
        for name, spec in secret_specs(kind).items():
            found.setdefault(name, (spec, []))[1].append(label)
    return found


def public_config(config, kind: str):
    """The config as the page may show it: without the secrets of its kind."""
    if not isinstance(config, dict) or kind not in CHANNEL_KINDS:
        return config
    return {key: value for key, value in config.items() if key not in secret_specs(kind)}


class BlankTextarea(forms.Textarea):
    """Renders empty whatever it holds: a typed secret is not sent back either."""

    def format_value(self, value):
        return None


class PublicConfigField(forms.JSONField):
    """The config's JSON without its secrets, whether shown from the database or re-shown
    after a refused save (which may hold a secret typed into it)."""

    kind = ""

    def prepare_value(self, value):
        return super().prepare_value(public_config(value, self.kind))


def secret_form_fields() -> dict:
    """For each secret key: a field to type a new value into, and a tick to clear it."""
    fields = {}
    for name, (spec, kinds) in all_secret_specs().items():
        if spec.kind == "dict":
            widget = BlankTextarea(
                attrs={"rows": 3, "cols": 80, "placeholder": '{"Header": "value"}'}
            )
        elif spec.kind == "pem":  # a password input would strip the PEM's line breaks
            widget = BlankTextarea(attrs={"rows": 6, "cols": 80, "autocomplete": "off",
                                          "spellcheck": "false"})  # fmt: skip
        else:
            widget = forms.PasswordInput(attrs={"autocomplete": "new-password", "size": 60})
        fields[f"secret_{name}"] = forms.CharField(
            label=name, required=False, widget=widget, help_text=f"Secret of {', '.join(kinds)}."
        )
        fields[f"clear_{name}"] = forms.BooleanField(label=f"clear {name}", required=False)
    return fields


class ChannelFormBase(forms.ModelForm):
    """Secrets are write-only: the config shows everything else, and each secret is a field
    of its own saying whether it is set. Empty keeps the stored value, a typed one replaces
    it, the tick clears it. A secret typed into the config's JSON counts as typed."""

    config = PublicConfigField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField"}),
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "enabled", "config", "subject_template", "body_template"]
        widgets = {
            "subject_template": forms.Textarea(attrs={"rows": 2, "cols": 80}),
            "body_template": forms.Textarea(attrs={"rows": 10, "cols": 80}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["config"].kind = self.data.get("kind") or self.instance.kind
        if self.instance.pk:
            # Compared with what is posted, which has no secrets either.
            self.initial["config"] = public_config(self.instance.config, self.instance.kind)
            self.say_what_is_set()

    def say_what_is_set(self):
        stored = self.instance.config or {}
        for name, spec in secret_specs(self.instance.kind).items():
            field = self.fields.get(f"secret_{name}")
            if field is None:
                continue
            if not stored.get(name):
                field.help_text = "Not set."
            elif spec.kind == "dict":
                names = ", ".join(sorted(stored[name]))
                field.help_text = (
                    f"Set: leave empty to keep it ({names}), or type a JSON object to replace it."
                )
            else:
                field.help_text = "Set: leave empty to keep it, or type a new value to replace it."

    def clean(self):
        cleaned = super().clean()
        kind, config = cleaned.get("kind"), cleaned.get("config")
        if kind in CHANNEL_KINDS and isinstance(config, dict):
            cleaned["config"] = self.with_secrets(kind, config, cleaned)
        return cleaned

    def with_secrets(self, kind: str, config: dict, cleaned: dict) -> dict:
        config, specs = dict(config), secret_specs(kind)
        stored = (self.instance.config or {}) if self.instance.pk else {}
        for name in all_secret_specs():
            typed = cleaned.get(f"secret_{name}")
            if name not in specs:
                if typed:
                    self.add_error(f"secret_{name}", f"A {kind} channel has no secret {name!r}.")
                continue
            if name in config:
                continue  # typed into the JSON
            if typed:
                config[name] = self.typed_value(name, specs[name], typed)
            elif not cleaned.get(f"clear_{name}") and name in stored:
                config[name] = stored[name]
        return config

    def typed_value(self, name: str, spec, typed: str):
        if spec.kind == "pem":
            return typed.replace("\r\n", "\n")  # as a browser sends a textarea's lines
        if spec.kind != "dict":
            return typed
        try:
            return json.loads(typed)
        except ValueError:
            self.add_error(f"secret_{name}", "Type a JSON object.")
            return {}


ChannelForm = type("ChannelForm", (ChannelFormBase,), secret_form_fields())


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "enabled", "destination"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    actions = ["send_test_message"]
    readonly_fields = ["config_keys", "preview", "shown_config", "secrets_set"]

    def get_fieldsets(self, request, obj=None):
        message = ("Message", {"fields": ["subject_template", "body_template", "preview"]})
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only pages show model fields as stored: show the config without secrets.
            fields = ["name", "kind", "enabled", "shown_config", "secrets_set", "config_keys"]
            return [(None, {"fields": fields}), message]
        names = list(secret_specs(obj.kind)) if obj else list(all_secret_specs())
        # Each field beside its clear tick (a new channel has nothing to clear).
        secrets = [(f"secret_{n}", f"clear_{n}") if obj else f"secret_{n}" for n in names]
        fieldsets = [(None, {"fields": ["name", "kind", "enabled", "config", "config_keys"]})]
        if secrets:
            about = SECRETS_HELP if obj else NEW_SECRETS_HELP
            fieldsets.append(("Secrets", {"fields": secrets, "description": about}))
        return [*fieldsets, message]

    @admin.display(description="config")
    def shown_config(self, channel):
        return json.dumps(public_config(channel.config, channel.kind), indent=2)

    @admin.display(description="secrets")
    def secrets_set(self, channel):
        stored = channel.config or {}
        return (
            ", ".join(
                f"{name}: {'set' if stored.get(name) else 'not set'}"
                for name in secret_specs(channel.kind)
            )
            or "none"
        )

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
        sample_link = SAMPLE_ACK_URL if transport.ack_link else ""  # as its messages have
        for event, ack_url in [(NOTIFY, sample_link), (ACKNOWLEDGED, ""), (RESOLVED, "")]:
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


class AttemptInline(ReadOnlyTabularInline):
    """Each try of the delivery, so an operator sees why a message was late."""

    model = DeliveryAttempt
    fields = ["number", "at", "outcome", "provider_status", "latency_ms", "answer"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    inlines = [AttemptInline]
    exclude = ["earlier_attempts"]
    readonly_fields = ["earlier"]
    list_display = [
        "created_at", "alarm", "event", "cycle", "step_number", "round_number", "method",
        "target_name",
        "address", "status", "attempts", "provider_status", "latency_ms", "sent_at", "outcome",
    ]  # fmt: skip
    list_filter = ["status", "event", "method", "outcome"]
    search_fields = ["address", "person__name", "channel__name", "alarm__title"]
    list_select_related = ["alarm", "person", "channel"]
    date_hierarchy = "created_at"

    @admin.display(description="step", ordering="step")
    def step_number(self, delivery):
        return delivery.step + 1

    @admin.display(description="round", ordering="round")
    def round_number(self, delivery):
        return delivery.round + 1

    @admin.display(description="target")
    def target_name(self, delivery):
        return delivery.person or delivery.channel or delivery.target

    @admin.display(description="earlier attempts")
    def earlier(self, delivery):
        """Attempts older than the ones listed below, counted by what came of them."""
        summary = delivery.earlier_attempts
        if not summary:
            return "none"
        outcomes = ", ".join(f"{what} × {n}" for what, n in sorted(summary["outcomes"].items()))
        return f"{summary['count']} since {summary['first_at']}: {outcomes}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ReplyCode)
class ReplyCodeAdmin(ReadOnlyAdmin):
    """Which alarm each phone answers by which number ("1a"), open or released."""

    list_display = ["address", "number", "alarm", "person", "created_at", "paged_at",
                    "released_at"]  # fmt: skip
    list_filter = [("released_at", admin.EmptyFieldListFilter)]
    search_fields = ["address", "person__name", "alarm__title"]
    list_select_related = ["alarm", "person"]
