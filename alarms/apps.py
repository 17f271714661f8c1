from django.apps import AppConfig
from django.db.models.signals import post_migrate

DISPATCH_PERMISSIONS = ["view_alarm", "acknowledge_alarm", "resolve_alarm", "cancel_alarm"]


def create_dispatch_group(sender, **kwargs):
    """The Dispatch group may watch the board and acknowledge, resolve and cancel alarms.

    Made after every migrate (and test flush), once the permissions exist.
    """
    from django.contrib.auth.models import Group, Permission  # needs the app registry ready

    group, _ = Group.objects.get_or_create(name="Dispatch")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="alarms", codename__in=DISPATCH_PERMISSIONS
        )
    )


class AlarmsConfig(AppConfig):
    name = "alarms"
    verbose_name = "Alarms"

    def ready(self):
        from . import schedules, signals  # noqa: F401  (connects the receivers)

        post_migrate.connect(create_dispatch_group, sender=self)
