from django.apps import AppConfig


class EscalationConfig(AppConfig):
    name = "escalation"
    verbose_name = "Escalation"

    def ready(self):
        from . import routing  # noqa: F401  (connects the receivers that refresh routing config)
