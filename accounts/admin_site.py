"""The admin site: entered by those who may configure (Operators, superusers), whatever
their staff flag; sign-in throttled like the board's."""

from django.contrib import admin

from . import roles
from .forms import AdminAuthenticationForm
from .views import mark_throttled


class AlarmAdminSite(admin.AdminSite):
    site_header = "Alarm broker"
    site_title = "Alarm broker admin"
    index_title = "Configuration"
    login_form = AdminAuthenticationForm

    def has_permission(self, request):
        return roles.may_configure(request.user)

    def login(self, request, extra_context=None):
        return mark_throttled(super().login(request, extra_context))
