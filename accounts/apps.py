from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


def keep_role_groups(sender, using="default", **kwargs):
    """After every migrate (and test flush): the role groups exist with their permissions."""
    from .roles import sync_role_groups  # needs the app registry ready

    sync_role_groups(using)


class AccountsConfig(AppConfig):
    default = True
    name = "accounts"
    verbose_name = "Accounts and audit"

    def ready(self):
        from . import audit  # needs the app registry ready

        audit.connect()
        # After the last app's permissions are created: this app is listed last.
        post_migrate.connect(keep_role_groups, sender=self)


class AlarmAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "accounts.admin_site.AlarmAdminSite"
