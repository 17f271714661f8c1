"""Admin for channels and the read-only delivery audit."""

from django.contrib import admin

from .models import Delivery, NotificationChannel


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at", "alarm", "step_number", "round", "method", "target_name", "address",
        "status", "attempts", "sent_at",
    ]  # fmt: skip
    list_filter = ["status", "method"]
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
