"""The Celery app: settings come from Django's (CELERY_*), tasks from each app's tasks.py."""

import gc
import logging.config
import os

from celery import Celery
from celery.signals import (
    beat_init,
    celeryd_init,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)

from core import logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alarmsite.settings")

app = Celery("alarmsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Tasks whose first argument is the id of the alarm they handle.
ALARM_TASKS = {"escalation.tasks.escalate"}


@celeryd_init.connect
@setup_logging.connect
def use_our_logging(loglevel=None, **kwargs):
    """Worker and beat log as the web process does (LOG_FORMAT, alarm ids, tokens redacted),
    at the level given by their -l option. Also at the worker's first signal: it warns
    (e.g. of running as root) before it sets up logging."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)  # as Django does: warnings are log lines too
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@task_prerun.connect
def log_about_the_alarm(sender=None, args=(), **kwargs):
    """Celery's own lines about a task that runs an alarm's step carry the alarm's id."""
    logs.concerning(args[0] if sender.name in ALARM_TASKS and args else None)


@task_postrun.connect
def log_about_nothing(**kwargs):
    logs.concerning(None)


@task_prerun.connect
@task_postrun.connect
def close_old_connections(sender=None, **kwargs):
    """As around each web request: drop a connection that broke or outlived CONN_MAX_AGE, keep
    a healthy one for the next task (CELERY_DB_REUSE_MAX stops Celery closing every one)."""
    from django.db import close_old_connections

    if not getattr(sender.request, "is_eager", False):  # an eager task runs in its caller's
        close_old_connections()


@worker_ready.connect
@worker_process_init.connect
def leave_what_is_loaded_out_of_collections(**kwargs):
    """As the web process does (alarmsite/asgi.py): the worker and each of its pool processes,
    once loaded, keep what they loaded out of the garbage collector's full passes."""
    gc.freeze()


@worker_ready.connect
def report_worker_alive(**kwargs):
    from observability.health import keep_reporting  # needs Django's settings, loaded by now

    keep_reporting("worker")


@worker_process_init.connect
def report_process_alive(**kwargs):
    """Each pool process says it is alive, so the messages it was sending when it died are
    handed to the others within seconds (notifications/delivery.py)."""
    from core.liveness import keep_reporting  # needs Django's settings, loaded by now

    keep_reporting()


@worker_process_shutdown.connect
def report_process_stopped(**kwargs):
    from core.liveness import stop_reporting

    stop_reporting()


@beat_init.connect
def report_beat_alive(**kwargs):
    from observability.health import keep_reporting

    keep_reporting("beat")
