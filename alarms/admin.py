"""Admin for alarms: list with filters, the timeline and deliveries inline, labels, details
and steps shown as tables and lists a person reads (never raw JSON, every value escaped)."""

import json

from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.admin_inlines import ReadOnlyTabularInline
from devices.models import Person
from notifications.models import Delivery, NotificationChannel

from .models import (
    Alarm,
    AlarmEvent,
    CapFeed,
    InboundAddress,
    InboundMail,
    MetricRule,
    MetricSeries,
    ScheduledAlarm,
)
from .sources import cap_feeds, email_in, schedules

# What the admin shows for an empty field (its own default; a computed field must say it).
NOTHING = "-"


def to_the_second(value) -> str:
    """A time as people compare timeline entries: to the second, in the server's zone."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else NOTHING


def readable(value):
    """JSON as HTML: an object as a key/value table, a list as a list, anything else as text;
    every key and value escaped (alarm text comes from outside)."""
    if isinstance(value, dict):
        rows = format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>", ((k, readable(v)) for k, v in value.items())
        )
        return format_html('<table class="readable">{}</table>', rows)
    if isinstance(value, list):
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((readable(v),) for v in value))
        )
    return value if isinstance(value, str) else json.dumps(value)


def readable_field(value):
    """A JSON field on the alarm's page."""
    return readable(value) if value else NOTHING


class EventInline(ReadOnlyTabularInline):
    model = AlarmEvent
    fields = ["time", "kind", "actor", "text", "source_ip"]
    ordering = ["at", "id"]

    @admin.display(description="at")
    def time(self, entry):
        return to_the_second(entry.at)


class DeliveryInline(ReadOnlyTabularInline):
    model = Delivery
    fields = ["what", "round_number", "method", "address", "status", "attempts", "sent", "error",
              "message"]  # fmt: skip
    show_change_link = True

    @admin.display(description="step")
    def what(self, delivery):
        return delivery.what()

    @admin.display(description="round")
    def round_number(self, delivery):
        return delivery.round + 1

    @admin.display(description="sent at")
    def sent(self, delivery):
        return to_the_second(delivery.sent_at)


@admin.register(Alarm)
class AlarmAdmin(admin.ModelAdmin):
    # Few, short columns: with the navigation and the filters beside it, the list fits 1,400 px.
    list_display = ["raised", "title", "severity", "status", "where", "device", "times",
                    "step"]  # fmt: skip
    list_filter = ["status", "severity", "source", "site"]
    search_fields = ["title", "message", "dedup_key", "device__name", "person__name"]
    list_select_related = ["site", "room", "room__site", "person", "device", "policy"]
    date_hierarchy = "created_at"
    fieldsets = [
        (None, {"fields": ["title", "message", "severity", "status", "source", "device", "site",
                           "room", "person", "dedup_key"]}),
        ("Labels and details", {"fields": ["labels_table", "details_table"]}),
        ("When", {"fields": ["raised", "occurrences", "last_occurrence", "acknowledged",
                             "resolved", "reopened"]}),
        ("Escalation", {"fields": ["policy", "routing", "silenced_by", "step", "next_step",
                                   "steps", "repeats"]}),
        ("Internals", {"classes": ["collapse"], "fields": ["id", "escalation_token",
                                                           "step_queued_until", "external"]}),
    ]  # fmt: skip
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    inlines = [EventInline, DeliveryInline]

    class Media:
        css = {"all": ["alarms/admin.css"]}

    @admin.display(description="raised", ordering="created_at")
    def raised(self, alarm):
        return to_the_second(alarm.created_at)

    @admin.display(description="where")
    def where(self, alarm):
        place = str(alarm.room) if alarm.room else (alarm.site.name if alarm.site else "")
        return " · ".join(part for part in (place, alarm.person and alarm.person.name) if part)

    @admin.display(description="times", ordering="occurrences")
    def times(self, alarm):
        return alarm.occurrences

    @admin.display(description="step")
    def step(self, alarm):
        if alarm.current_step < 0:
            return NOTHING
        text = f"{alarm.current_step + 1} of {len(alarm.steps_snapshot)}"
        return text + (f", round {alarm.current_round + 1}" if alarm.current_round else "")

    @admin.display(description="next step at")
    def next_step(self, alarm):
        return to_the_second(alarm.next_escalation_at)

    @admin.display(description="labels")
    def labels_table(self, alarm):
        return readable_field(alarm.labels)

    @admin.display(description="details")
    def details_table(self, alarm):
        return readable_field(alarm.details)

    @admin.display(description="external records")
    def external(self, alarm):
        return readable_field(alarm.external_refs)

    @admin.display(description="last occurrence")
    def last_occurrence(self, alarm):
        return to_the_second(alarm.last_occurrence_at)

    @admin.display(description="acknowledged")
    def acknowledged(self, alarm):
        return _at_by(alarm.acknowledged_at, alarm.acknowledged_by)

    @admin.display(description="resolved")
    def resolved(self, alarm):
        return _at_by(alarm.resolved_at, alarm.resolved_by)

    @admin.display(description="reopened")
    def reopened(self, alarm):
        if not alarm.reopen_count:
            return NOTHING
        return f"{alarm.reopen_count}×, last at {to_the_second(alarm.reopened_at)}"

    @admin.display(description="repeats")
    def repeats(self, alarm):
        if not alarm.repeat_count:
            return NOTHING
        rounds, pause = alarm.repeat_count, alarm.repeat_after_seconds
        return f"{rounds} more round(s), each {pause} s after the last step"

    @admin.display(description="steps (as this alarm keeps them)")
    def steps(self, alarm):
        return format_html(
            '<ol class="alarm-steps">{}</ol>',
            format_html_join("", "<li>{}</li>", ((text,) for text in described_steps(alarm))),
        ) if alarm.steps_snapshot else NOTHING  # fmt: skip

    @admin.display(description="routing")
    def routing(self, alarm):
        url = reverse("admin:escalation_routingrule_test") + f"?alarm={alarm.pk}"
        return format_html('<a href="{}">Test how this alarm is routed now</a>', url)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Status changes go through the lifecycle (the API or the board), never a form.
        return False


def _at_by(at, by: str) -> str:
    return f"{to_the_second(at)} by {by}" if at and by else to_the_second(at)


def described_steps(alarm: Alarm) -> list[str]:
    """Each step of the alarm's snapshot in words, numbered from 1 by the list that shows it."""
    steps = alarm.steps_snapshot
    persons = Person.objects.in_bulk({i for step in steps for i in step.get("person_ids", [])})
    channels = NotificationChannel.objects.in_bulk(
        {i for step in steps for i in step.get("channel_ids", [])}
    )
    described = []
    for index, step in enumerate(steps):
        who = ", ".join(persons[i].name for i in step.get("person_ids", []) if i in persons)
        text = f"after {step.get('delay_seconds', 0)} s: {who or 'nobody'}"
        if who:
            text += f" by {', '.join(step.get('methods', [])) or '–'}"
        posts = [channels[i].name for i in step.get("channel_ids", []) if i in channels]
        if posts:
            text += f"; post to {', '.join(posts)}"
        if index == alarm.current_step:
            text += " (the current step)"
        described.append(text)
    return described


class SeriesInline(ReadOnlyTabularInline):
    model = MetricSeries
    fields = ["labels", "last_value", "last_at", "holding_since", "firing", "resolved_at"]


@admin.register(MetricRule)
class MetricRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "condition", "for_seconds", "cooldown_seconds", "severity"]
    list_filter = ["enabled", "severity"]
    search_fields = ["name", "metric"]
    inlines = [SeriesInline]

    @admin.display(description="condition")
    def condition(self, rule):
        return f"{rule.metric}{rule.matchers or ''} {rule.operator} {rule.threshold:g}"


@admin.register(ScheduledAlarm)
class ScheduledAlarmAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "when", "new_alarm_each_time", "policy", "last_fired_at"]
    list_filter = ["enabled", "new_alarm_each_time"]
    search_fields = ["name", "title"]
    readonly_fields = ["periodic_task", "last_fired_at"]
    actions = ["raise_now"]

    @admin.display(description="when")
    def when(self, scheduled):
        if scheduled.crontab:
            return f"{scheduled.crontab} ({scheduled.time_zone})"
        return f"once, {scheduled.run_at:%Y-%m-%d %H:%M %Z}" if scheduled.run_at else ""

    @admin.action(description="Raise now (as the schedule would)")
    def raise_now(self, request, queryset):
        for scheduled in queryset:
            alarm_id = schedules.fire(scheduled.pk)
            if alarm_id:
                messages.success(request, f"{scheduled.name}: alarm {alarm_id} raised.")
            else:
                messages.warning(request, f"{scheduled.name} is disabled: nothing raised.")


@admin.register(InboundAddress)
class InboundAddressAdmin(admin.ModelAdmin):
    list_display = ["local_part", "addresses", "device", "severity"]
    search_fields = ["local_part", "device__name"]
    list_select_related = ["device"]

    @admin.display(description="mail to")
    def addresses(self, inbox):
        return ", ".join(f"{inbox.local_part}@{domain}" for domain in settings.MAIL_IN_DOMAINS)


@admin.register(InboundMail)
class InboundMailAdmin(admin.ModelAdmin):
    """The mails as they arrived, to read (escaped) and never to change."""

    list_display = ["received_at", "recipient", "envelope_from", "processed_at", "outcome", "alarm"]
    list_filter = [("processed_at", admin.EmptyFieldListFilter)]
    search_fields = ["recipient", "envelope_from", "outcome"]
    list_select_related = ["alarm"]
    fields = ["received_at", "recipient", "envelope_from", "peer", "processed_at", "outcome",
              "alarm", "as_received"]  # fmt: skip
    readonly_fields = fields
    actions = ["read_now"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="as received")
    def as_received(self, mail):
        text = bytes(mail.raw)[:RAW_SHOWN].decode("utf-8", errors="replace")
        return format_html("<pre>{}</pre>", text)

    @admin.action(description="Read into an alarm now (those not read yet)")
    def read_now(self, request, queryset):
        read = [mail for mail in queryset if email_in.process(mail.pk) is not None]
        messages.success(request, f"{len(read)} mails read: " + "; ".join(m.outcome for m in read))


RAW_SHOWN = 100_000  # bytes of a mail the admin shows


@admin.register(CapFeed)
class CapFeedAdmin(admin.ModelAdmin):
    list_display = ["name", "device", "url", "enabled", "poll_interval_seconds", "last_polled_at",
                    "failing"]  # fmt: skip
    list_filter = ["enabled"]
    search_fields = ["name", "url"]
    readonly_fields = ["last_polled_at", "last_error", "etag", "last_modified", "entries_taken"]
    actions = ["poll_now"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"  # a feed address typed without one
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(boolean=True, description="failing")
    def failing(self, feed):
        return bool(feed.last_error)

    @admin.display(description="entries taken")
    def entries_taken(self, feed):
        return len(feed.seen_entries)

    @admin.action(description="Poll now")
    def poll_now(self, request, queryset):
        for feed in queryset.select_related("device"):
            result = cap_feeds.poll(feed)
            if result["problems"]:
                messages.warning(request, f"{feed.name}: {'; '.join(result['problems'])[:500]}")
            else:
                messages.success(request, f"{feed.name}: {len(result['taken'])} new alert(s).")
