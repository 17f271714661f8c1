"""What the admin shows and nobody edits: a record's history on its page (timeline,
deliveries, attempts, series), one plain table whose every column is named; and whole lists
the system writes (the audit trail, the record of who was on call)."""

from django.contrib import admin


class ReadOnlyTabularInline(admin.TabularInline):
    template = "admin/edit_inline/readonly_tabular.html"
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """A list the system writes: read here, never added to, changed or deleted."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
