"""Admin for alarms: list with filters, the timeline and deliveries inline."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from notifications.models import Delivery

from . import schedules
from .models import Alarm, AlarmEvent, MetricRule, MetricSeries, ScheduledAlarm


class EventInline(admin.TabularInline):
    model = AlarmEvent
    fields = ["at", "kind", "actor", "text", "source_ip"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["step", "round", "method", "address", "status", "attempts", "error", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alarm)
class AlarmAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "title", "severity", "status", "site", "room", "person", "device",
        "occurrences", "current_step", "next_escalation_at",
    ]  # fmt: skip
    list_filter = ["status", "severity", "source", "site"]
    search_fields = ["title", "message", "dedup_key", "device__name", "person__name"]
    list_select_related = ["site", "room", "person", "device"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Alarm._meta.fields] + ["steps_snapshot", "routing"]
    inlines = [EventInline, DeliveryInline]

    @admin.display(description="routing")
    def routing(self, alarm):
        url = reverse("admin:escalation_routingrule_test") + f"?alarm={alarm.pk}"
        return format_html('<a href="{}">Test how this alarm is routed now</a>', url)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Status changes go through the lifecycle (the API or the board), never a form.
        return False


class SeriesInline(admin.TabularInline):
    model = MetricSeries
    fields = ["labels", "last_value", "last_at", "holding_since", "firing", "resolved_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


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
    list_display = ["name", "enabled", "when", "policy", "last_fired_at"]
    list_filter = ["enabled"]
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
