"""Celery tasks for escalation: thin wrappers over escalation.engine."""

from celery import shared_task

from core.task_queue import queue_was_lost, started
from notifications.delivery import recovery

from . import engine


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
    return {"steps": engine.sweep(), "deliveries": handed_back + recovery.retry_overdue()}
