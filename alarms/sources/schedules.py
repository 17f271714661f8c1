"""Scheduled alarms and their periodic tasks in django-celery-beat: kept in step on every save
and delete, fired by beat through `alarms.tasks.fire_scheduled_alarm`. A firing while the alarm
of an earlier one is open is a repeat of it, unless the schedule opens a new alarm each time."""

import json

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

from alarms import lifecycle
from alarms.models import ScheduledAlarm
from alarms.timeline import Actor

TASK = "alarms.tasks.fire_scheduled_alarm"


@receiver(post_save, sender=ScheduledAlarm)
def sync(sender, instance: ScheduledAlarm, **kwargs) -> None:
    task = instance.periodic_task or PeriodicTask(task=TASK)
    task.name = f"Scheduled alarm: {instance.name}"
    task.args = json.dumps([instance.pk])
    task.enabled = instance.enabled
    task.crontab = task.clocked = None
    if instance.crontab.strip():
        task.one_off = False
        task.crontab, _ = CrontabSchedule.objects.get_or_create(
            **instance.crontab_fields(), timezone=instance.time_zone
        )
    else:
        task.one_off = True
        task.clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=instance.run_at)
    task.save()
    if instance.periodic_task_id != task.pk:
        ScheduledAlarm.objects.filter(pk=instance.pk).update(periodic_task=task)
        instance.periodic_task = task


@receiver(post_delete, sender=ScheduledAlarm)
def drop(sender, instance: ScheduledAlarm, **kwargs) -> None:
    if instance.periodic_task_id:
        PeriodicTask.objects.filter(pk=instance.periodic_task_id).delete()


def fire(scheduled_id: int) -> str | None:
    """Raise the scheduled alarm now; return the alarm's id (None when it is gone or off)."""
    with transaction.atomic():
        scheduled = ScheduledAlarm.objects.select_for_update().filter(pk=scheduled_id).first()
        if scheduled is None or not scheduled.enabled:
            return None
        now = timezone.now()
        outcome = lifecycle.raise_alarm(
            source="schedule",
            dedup_key=dedup_key(scheduled, now),
            title=scheduled.title,
            message=scheduled.message,
            severity=scheduled.severity,
            labels={**scheduled.labels, "schedule": scheduled.name},
            site=scheduled.site,
            policy=scheduled.policy,
            actor=Actor(f"schedule {scheduled.name}"),
        )
        ScheduledAlarm.objects.filter(pk=scheduled.pk).update(last_fired_at=now)
        return str(outcome.alarm.pk)


def dedup_key(scheduled: ScheduledAlarm, now) -> str:
    """One key for every firing, so a firing while its alarm is open is a repeat of it; or,
    for a schedule that opens a new alarm each time, a key of the firing's own."""
    if scheduled.new_alarm_each_time:
        return f"schedule:{scheduled.pk}:{now:%Y%m%dT%H%M%S}"
    return f"schedule:{scheduled.pk}"
