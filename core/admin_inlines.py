"""A record's history shown on its admin page (timeline, deliveries, attempts, series): read
only, nothing added or deleted, one plain table whose every column is named."""

from django.contrib import admin


class ReadOnlyTabularInline(admin.TabularInline):
    template = "admin/edit_inline/readonly_tabular.html"
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False
