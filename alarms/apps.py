from django.apps import AppConfig


class AlarmsConfig(AppConfig):
    name = "alarms"
    verbose_name = "Alarms"

    def ready(self):
        from . import schedules, signals  # noqa: F401  (connects the receivers)
