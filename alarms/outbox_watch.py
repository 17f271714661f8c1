"""Channels that keep a remote record in step (an upstream broker, Zammad, PagerDuty) and cannot
reach it. Their backlog is shown: the board's banner, /readyz and /metrics read what the last
look found. Once one has been failing for OUTBOX_ALARM_AFTER_SECONDS, an alarm of its own
(source `outbox`) says so, routed like any other; it resolves once the channel's provider takes
its messages again. A central registry that aggregates sites must never miss an alarm
silently."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from notifications.outbox import Backlog, backlogs
from observability import health

from . import board, lifecycle
from .models import OPEN_STATUSES, Alarm
from .timeline import SYSTEM

SOURCE = "outbox"


def alarm_key(channel_id: int) -> str:
    return f"outbox:channel:{channel_id}"


def watch(now=None) -> list[Backlog]:
    """Look at every outbox channel's backlog (beat, often): show it, and raise or resolve the
    alarms of the channels failing too long. Return what was found."""
    now = now or timezone.now()
    found = backlogs()
    show([backlog.as_dict() for backlog in found])
    too_long = timedelta(seconds=settings.OUTBOX_ALARM_AFTER_SECONDS)
    failing = [b for b in found if b.failing_since and now - b.failing_since >= too_long]
    for backlog in failing:
        _report(backlog)
    still = {alarm_key(backlog.channel_id) for backlog in failing}
    opened = Alarm.objects.filter(source=SOURCE, status__in=OPEN_STATUSES)
    for key in opened.exclude(dedup_key__in=still).values_list("dedup_key", flat=True):
        lifecycle.clear(key, SYSTEM, "Its provider takes the messages again")
    return found


def show(channels: list[dict]) -> None:
    """Keep what waits for /readyz, /metrics and the boards' snapshots; tell the open boards
    when it changed."""
    if health.keep_outbox_backlog(channels):
        board.publish_outbox(channels)


def _report(backlog: Backlog) -> None:
    since = timezone.localtime(backlog.failing_since)
    lifecycle.report(
        source=SOURCE,
        dedup_key=alarm_key(backlog.channel_id),
        title=f"Forwarding to {backlog.channel} is failing",
        message=f"Messages to {backlog.channel} ({backlog.kind}) have waited since "
        f"{since:%Y-%m-%d %H:%M:%S %Z}: its provider refuses them or does not answer (last: "
        f"{backlog.last_error or 'no answer'}). They go, in order, as soon as it answers "
        "again; this alarm then resolves.",
        severity="high",
        labels={"channel": backlog.channel, "kind": backlog.kind},
        actor=SYSTEM,
    )
