from django.apps import AppConfig


class AlarmsConfig(AppConfig):
    name = "alarms"
    verbose_name = "Alarms"

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers)
        from .sources import schedules  # noqa: F401
