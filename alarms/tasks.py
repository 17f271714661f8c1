"""Celery tasks of the alarms app: thin wrappers over its domain modules. The escalation tasks
keep the names they had in the escalation app (`escalation.tasks.*`): queued tasks and beat's
stored schedule name them."""

from celery import shared_task

from core.task_queue import queue_was_lost, started
from notifications.delivery import recovery

from . import claims, engine, outbox_watch
from .sources import cap_feeds, email_in, heartbeats, schedules


@shared_task(name="escalation.tasks.escalate")
def escalate(alarm_id: str, token: str) -> bool:
    """Fast path: run the step this task was scheduled for, if the alarm still expects it."""
    return engine.run_countdown(alarm_id, token)


@shared_task(name=engine.DRAIN_TASK)
def drain() -> int:
    """After raises: every step due now, many alarms per transaction."""
    started(engine.DRAIN_PENDING)
    return engine.drain()


@shared_task(name="escalation.tasks.sweep")
def sweep() -> dict:
    """Beat, every few seconds: overdue steps and deliveries whose tasks were lost."""
    if queue_was_lost():  # Redis came back empty: every task in it is gone
        engine.forget_queued()
        recovery.forget_queued()
    handed_back = recovery.hand_back_from_dead() + recovery.probe_outboxes()
    return {
        "steps": engine.sweep(),
        "deliveries": handed_back + recovery.retry_overdue(),
        "late_claims": claims.escalate_late(),
    }


@shared_task(name="alarms.tasks.check_heartbeats")
def check_heartbeats() -> int:
    """Beat: devices silent past their heartbeat interval get an offline alarm."""
    return heartbeats.check()


@shared_task(name="alarms.tasks.watch_outbox")
def watch_outbox() -> int:
    """Beat: show what waits for the outbox channels, and alarm on those failing too long."""
    return len(outbox_watch.watch())


@shared_task(name="alarms.tasks.poll_cap_feeds")
def poll_cap_feeds() -> int:
    """Beat: the public warning (CAP) feeds whose interval has passed; how many were polled."""
    return cap_feeds.poll_due()


@shared_task(name="alarms.tasks.fire_scheduled_alarm")
def fire_scheduled_alarm(scheduled_id: int) -> str | None:
    """Beat, on a scheduled alarm's schedule: raise it."""
    return schedules.fire(scheduled_id)


@shared_task(name="alarms.tasks.sweep_mail")
def sweep_mail() -> int:
    """Beat: mails stored but not read into an alarm yet; return how many it read."""
    return email_in.sweep()
