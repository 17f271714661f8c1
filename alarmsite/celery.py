"""The Celery app: settings come from Django's (CELERY_*), tasks from each app's tasks.py."""

import os

from celery import Celery
from celery.signals import beat_init, task_postrun, task_prerun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alarmsite.settings")

app = Celery("alarmsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(sender=None, **kwargs):
    """As around each web request: drop a connection that broke or outlived CONN_MAX_AGE, keep
    a healthy one for the next task (CELERY_DB_REUSE_MAX stops Celery closing every one)."""
    from django.db import close_old_connections

    if not getattr(sender.request, "is_eager", False):  # an eager task runs in its caller's
        close_old_connections()


@worker_ready.connect
def report_worker_alive(**kwargs):
    from .health import keep_reporting  # needs Django's settings, loaded by now

    keep_reporting("worker")


@beat_init.connect
def report_beat_alive(**kwargs):
    from .health import keep_reporting

    keep_reporting("beat")
