"""Replies as they came in and what came of them: read here, written by the system."""

from django.contrib import admin

from core.admin_inlines import ReadOnlyAdmin

from .models import Reply


@admin.register(Reply)
class ReplyAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "method", "sender", "text", "person", "outcome", "answer"]
    list_filter = ["method", "handled_at"]
    search_fields = ["sender", "text", "person__name"]
    list_select_related = ["person"]
