"""Scheduled alarms: their schedule kept in django-celery-beat, raised by a real beat."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from alarms import lifecycle
from alarms.models import Alarm, ScheduledAlarm
from alarms.sources import schedules
from alarms.timeline import SYSTEM
from conftest import wait_until
from notifications.tests.steps import drain, run_step

pytestmark = pytest.mark.django_db


def weekly_test(**fields):
    fields = {"name": "Weekly chain test", "title": "Weekly test alarm: please acknowledge",
              "crontab": "0 9 * * mon", "time_zone": "Europe/Berlin", **fields}  # fmt: skip
    return ScheduledAlarm.objects.create(**fields)


def test_a_recurring_scheduled_alarm_is_a_periodic_task_of_beat():
    scheduled = weekly_test()

    task = PeriodicTask.objects.get(pk=scheduled.periodic_task_id)
    assert task.task == "alarms.tasks.fire_scheduled_alarm"
    assert json.loads(task.args) == [scheduled.pk] and task.enabled and not task.one_off
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_week, str(cron.timezone)) == (
        "0", "9", "mon", "Europe/Berlin")  # fmt: skip

    scheduled.crontab, scheduled.enabled = "30 7 1 * *", False
    scheduled.save()
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month) == ("30", "7", "1")
    assert not task.enabled
    scheduled.delete()
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_a_one_off_scheduled_alarm_is_a_clocked_one_off_task():
    at = timezone.now() + timedelta(days=1)
    scheduled = weekly_test(name="Fire drill", crontab="", run_at=at)

    task = PeriodicTask.objects.get(pk=scheduled.periodic_task_id)
    assert task.one_off and task.clocked.clocked_time == at and task.crontab is None


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"crontab": "", "run_at": None}, "either a crontab"),
        ({"crontab": "0 9 * *"}, "five fields"),
        ({"crontab": "0 25 * * *"}, "Not a crontab"),
        ({"time_zone": "Mars/Olympus"}, "time zone"),
    ],
)
def test_the_admin_refuses_a_bad_schedule(admin_client, fields, error):
    data = {
        "name": "Bad", "enabled": "on", "title": "T", "severity": "info", "labels": "{}",
        "crontab": "0 9 * * mon", "run_at_0": "", "run_at_1": "", "time_zone": "UTC",
    }  # fmt: skip
    data.update({k: v or "" for k, v in fields.items()})

    response = admin_client.post("/admin/alarms/scheduledalarm/add/", data)

    assert response.status_code == 200 and error in response.content.decode()
    assert (
        not ScheduledAlarm.objects.exists()
        and not PeriodicTask.objects.filter(task=schedules.TASK).exists()
    )


def test_firing_raises_an_alarm_that_follows_its_policy(
    make_policy, webhook_channel, webhook_receiver
):
    policy = make_policy([(0, [], [webhook_channel])], name="Chain test")
    scheduled = weekly_test(policy=policy, labels={"test": "yes"})

    alarm = Alarm.objects.get(pk=schedules.fire(scheduled.pk))

    assert (alarm.source, alarm.title, alarm.severity) == (
        "schedule", "Weekly test alarm: please acknowledge", "info")  # fmt: skip
    assert alarm.labels == {"test": "yes", "schedule": "Weekly chain test"}
    assert alarm.policy == policy
    assert alarm.events.get(kind="routed").text == "Policy Chain test: named by its schedule"
    run_step(alarm)
    drain(alarm)
    assert webhook_receiver.requests[0]["json"]["alarm"]["title"] == alarm.title
    scheduled.refresh_from_db()
    assert scheduled.last_fired_at is not None
    scheduled.enabled = False
    scheduled.save()
    assert schedules.fire(scheduled.pk) is None


# --- a firing while its alarm is open ------------------------------------------------------


@pytest.fixture
def reminder(make_policy, webhook_channel):
    """A daily reminder that posts to the webhook on its policy's one step."""
    policy = make_policy([(0, [], [webhook_channel])], name="Reminders")
    return weekly_test(name="Fridge log", title="Log the fridge temperature", policy=policy)


def fire_and_notify(scheduled) -> Alarm:
    """Fire the schedule and run what its alarm's policy does now."""
    alarm = Alarm.objects.get(pk=schedules.fire(scheduled.pk))
    if alarm.next_escalation_at is not None:
        run_step(alarm)
        drain(alarm)
    return alarm


def a_second_later() -> None:
    """A firing's own key would name its second: two firings in one second would share it."""
    time.sleep(1.05)


def events_posted(webhook_receiver) -> list[str]:
    return [r["json"]["event"] for r in webhook_receiver.requests]


def test_a_firing_while_its_alarm_is_open_is_a_repeat_of_it(reminder, webhook_receiver):
    first = fire_and_notify(reminder)
    a_second_later()

    again = fire_and_notify(reminder)

    assert again.pk == first.pk
    assert Alarm.objects.filter(source="schedule").count() == 1
    again.refresh_from_db()
    assert (again.status, again.occurrences) == ("triggered", 2)
    assert again.events.filter(kind="repeated").count() == 1
    assert events_posted(webhook_receiver) == ["alarm.triggered"], "notified once, not twice"


def test_a_repeat_while_its_alarm_is_acknowledged_counts_on_it(reminder, webhook_receiver):
    first = fire_and_notify(reminder)
    lifecycle.acknowledge(first.pk, SYSTEM)
    a_second_later()

    again = fire_and_notify(reminder)

    assert again.pk == first.pk and again.status == "acknowledged"
    assert Alarm.objects.filter(source="schedule").count() == 1


def test_a_firing_soon_after_its_alarm_was_resolved_reopens_it_and_notifies_again(
    reminder, webhook_receiver
):
    first = fire_and_notify(reminder)
    lifecycle.resolve(first.pk, SYSTEM)
    a_second_later()

    again = fire_and_notify(reminder)

    assert again.pk == first.pk
    again.refresh_from_db()
    assert (again.status, again.reopen_count) == ("triggered", 1)
    assert events_posted(webhook_receiver) == ["alarm.triggered", "alarm.resolved",
                                              "alarm.triggered"]  # fmt: skip


def test_a_firing_long_after_its_alarm_was_resolved_opens_a_new_one(
    reminder, webhook_receiver, settings
):
    first = fire_and_notify(reminder)
    lifecycle.resolve(first.pk, SYSTEM)
    settings.FLAP_WINDOW_SECONDS = 0  # the resolve is longer ago than the window

    again = fire_and_notify(reminder)

    assert again.pk != first.pk and again.status == "triggered"
    assert events_posted(webhook_receiver)[-1] == "alarm.triggered"


def test_a_schedule_set_to_open_a_new_alarm_each_time_does(reminder, webhook_receiver):
    reminder.new_alarm_each_time = True
    reminder.save()
    first = fire_and_notify(reminder)
    a_second_later()

    again = fire_and_notify(reminder)

    assert again.pk != first.pk
    assert Alarm.objects.filter(source="schedule", status="triggered").count() == 2
    assert events_posted(webhook_receiver) == ["alarm.triggered", "alarm.triggered"]


def test_the_admin_shows_and_saves_whether_each_firing_opens_a_new_alarm(admin_client):
    form = admin_client.get("/admin/alarms/scheduledalarm/add/").content.decode()
    assert 'name="new_alarm_each_time"' in form
    assert "counts as a repeat of it" in form

    admin_client.post("/admin/alarms/scheduledalarm/add/", {
        "name": "Daily", "enabled": "on", "title": "T", "severity": "info", "labels": "{}",
        "crontab": "0 9 * * *", "run_at_0": "", "run_at_1": "", "time_zone": "UTC",
        "new_alarm_each_time": "on",
    })  # fmt: skip

    assert ScheduledAlarm.objects.get(name="Daily").new_alarm_each_time is True
    listed = admin_client.get("/admin/alarms/scheduledalarm/").content.decode()
    assert "open a new alarm each time" in listed


def test_a_new_schedule_repeats_its_open_alarm_by_default():
    assert weekly_test().new_alarm_each_time is False


def test_beat_raises_a_one_off_alarm_at_its_time(
    transactional_db, private_redis, process_env, start_worker_with_beat, tmp_path
):
    scheduled = weekly_test(name="Soon", crontab="", run_at=timezone.now() + timedelta(seconds=3))
    env = process_env(REDIS_URL=private_redis.url, VAR_DIR=str(tmp_path))

    start_worker_with_beat(env, "scheduler")

    alarm = wait_until(lambda: Alarm.objects.filter(source="schedule").first(), timeout=45)
    assert alarm.title == scheduled.title
    assert alarm.created_at >= scheduled.run_at
