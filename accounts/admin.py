"""Admin for users' API tokens (shown once, revocable) and the audit trail (read-only)."""

from django.contrib import admin, messages
from django.utils.html import format_html

from core.admin_inlines import ReadOnlyAdmin

from .models import ApiToken, AuditEntry


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        # A token is issued, used and revoked; never edited to belong to someone else.
        return self.readonly_fields + (["user", "name"] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            return
        issued, token = ApiToken.issue(obj.user, obj.name)
        obj.pk = issued.pk
        messages.warning(
            request,
            format_html(
                "API token “{}” for {}: <code>{}</code> — copy it now, it is stored only as a "
                "hash and cannot be shown again. Send it as <code>Authorization: Bearer …</code>.",
                obj.name,
                obj.user,
                token,
            ),
        )

    @admin.action(description="Revoke (stops working at once)")
    def revoke(self, request, queryset):
        for api_token in queryset.filter(revoked_at=None):
            api_token.revoke()


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor", "source_ip", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor", "object_repr", "object_id", "source_ip"]
    date_hierarchy = "at"
