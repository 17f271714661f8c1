"""The escalation engine, driven directly: the database holds the clock, so a test makes a step
due by moving `next_escalation_at` into the past instead of waiting."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms import engine, lifecycle, tasks
from alarms.models import Alarm
from alarms.timeline import SYSTEM, Actor
from conftest import broker_at
from core.redis_client import client as redis_client
from core.task_queue import QUEUE_MARK, queue_was_lost
from escalation.models import EscalationStep
from notifications.models import Delivery, NotificationChannel

pytestmark = pytest.mark.django_db


@pytest.fixture
def start_alarm(make_device):
    """Raise an alarm from a device whose default policy is the given one."""

    def start(policy, name="Desk phone 1"):
        device, _ = make_device(name, default_policy=policy)
        return lifecycle.raise_alarm(
            source="yealink", dedup_key=name, title="Emergency", device=device, actor=SYSTEM
        ).alarm

    return start


def fresh(alarm) -> Alarm:
    return Alarm.objects.get(pk=alarm.pk)


def make_due(alarm) -> None:
    Alarm.objects.filter(pk=alarm.pk).update(
        next_escalation_at=timezone.now() - timedelta(seconds=1)
    )


def run_now(alarm) -> bool:
    make_due(alarm)
    return engine.run_due_step(alarm.pk)


def kinds(alarm) -> list[str]:
    return list(alarm.events.values_list("kind", flat=True))


def notified(alarm) -> list[tuple[int, int, str, str]]:
    """(round, step, target name, method) of every delivery, in order."""
    return [
        (d.round, d.step, (d.person or d.channel).name, d.method)
        for d in Delivery.objects.filter(alarm=alarm).order_by("round", "step", "id")
    ]


def test_starting_snapshots_the_policys_steps_onto_the_alarm(
    start_alarm, make_policy, alice, bob, webhook_channel
):
    policy = make_policy(
        [(0, [alice], [webhook_channel]), (60, [bob, alice], [])],
        repeat_count=2,
        repeat_after_seconds=300,
    )

    alarm = fresh(start_alarm(policy))

    assert alarm.policy == policy
    assert alarm.steps_snapshot == [
        {"order": 0, "delay_seconds": 0, "person_ids": [alice.pk], "methods": ["email"],
         "channel_ids": [webhook_channel.pk]},
        {"order": 1, "delay_seconds": 60, "person_ids": sorted([alice.pk, bob.pk]),
         "methods": ["email"], "channel_ids": []},
    ]  # fmt: skip
    assert (alarm.repeat_count, alarm.repeat_after_seconds) == (2, 300)
    assert alarm.current_step == -1
    assert alarm.escalation_token is not None
    assert alarm.events.get(kind="routed").text.startswith("Policy Default:")


def test_the_first_step_is_due_after_its_own_delay(start_alarm, make_policy, alice):
    alarm = fresh(start_alarm(make_policy([(90, [alice], [])])))

    wait = alarm.next_escalation_at - alarm.created_at

    assert timedelta(seconds=89) < wait < timedelta(seconds=91)


def test_an_alarm_without_a_policy_is_recorded_and_never_escalates(start_alarm):
    alarm = fresh(start_alarm(None))

    assert alarm.next_escalation_at is None
    assert alarm.events.get(kind="routed").text.startswith("No escalation policy")
    assert engine.run_due_step(alarm.pk) is False


def test_editing_the_policy_mid_incident_does_not_change_a_running_alarm(
    start_alarm, make_policy, make_person, alice
):
    policy = make_policy([(0, [alice], [])])
    alarm = start_alarm(policy)
    snapshot = fresh(alarm).steps_snapshot

    step = policy.steps.get()
    step.persons.set([make_person("Mallory")])
    step.delay_seconds = 600
    step.save()
    EscalationStep.objects.create(policy=policy, order=1, delay_seconds=0)
    policy.repeat_count = 5
    policy.save()

    alarm = fresh(alarm)
    assert alarm.steps_snapshot == snapshot
    assert alarm.repeat_count == 0
    assert run_now(alarm)
    assert notified(alarm) == [(0, 0, "Alice", "email")]


def test_a_due_step_notifies_its_persons_and_channels(
    start_alarm, make_policy, alice, bob, webhook_channel
):
    alarm = start_alarm(make_policy([(0, [alice, bob], [webhook_channel]), (60, [bob], [])]))

    assert engine.run_due_step(alarm.pk) is True

    assert notified(alarm) == [
        (0, 0, "Alice", "email"),
        (0, 0, "Bob", "email"),
        (0, 0, "Ops webhook", "webhook"),
    ]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    event = fresh(alarm).events.get(kind="step_notified")
    assert event.text.startswith("Step 1 of 2, round 1: notifying ")
    assert "Ops webhook by webhook" in event.text


def test_the_next_step_is_due_its_delay_after_the_previous_step(
    start_alarm, make_policy, alice, bob
):
    alarm = start_alarm(make_policy([(0, [alice], []), (120, [bob], [])]))
    token_before = fresh(alarm).escalation_token

    engine.run_due_step(alarm.pk)

    alarm = fresh(alarm)
    assert alarm.current_step == 0
    wait = alarm.next_escalation_at - timezone.now()
    assert timedelta(seconds=100) < wait <= timedelta(seconds=120)
    assert alarm.escalation_token != token_before


def test_a_step_not_yet_due_does_nothing(start_alarm, make_policy, alice, bob):
    alarm = start_alarm(make_policy([(60, [alice], []), (60, [bob], [])]))
    before = fresh(alarm)

    assert engine.run_due_step(alarm.pk) is False
    assert engine.run_due_step(alarm.pk, before.escalation_token) is False

    after = fresh(alarm)
    assert (after.current_step, after.next_escalation_at) == (-1, before.next_escalation_at)
    assert not Delivery.objects.exists()


def test_a_task_with_a_stale_token_does_nothing(start_alarm, make_policy, alice, bob):
    alarm = start_alarm(make_policy([(0, [alice], []), (60, [bob], [])]))
    first_token = fresh(alarm).escalation_token
    engine.run_due_step(alarm.pk, first_token)
    make_due(alarm)

    assert engine.run_due_step(alarm.pk, first_token) is False

    assert fresh(alarm).current_step == 0
    assert notified(alarm) == [(0, 0, "Alice", "email")]


def test_a_task_with_the_current_token_runs_the_step(start_alarm, make_policy, alice, bob):
    alarm = start_alarm(make_policy([(0, [alice], []), (60, [bob], [])]))
    engine.run_due_step(alarm.pk)
    make_due(alarm)

    assert engine.run_due_step(alarm.pk, fresh(alarm).escalation_token) is True

    assert notified(alarm) == [(0, 0, "Alice", "email"), (0, 1, "Bob", "email")]


def test_a_step_run_twice_creates_each_delivery_once(
    start_alarm, make_policy, alice, webhook_channel, bob
):
    alarm = start_alarm(make_policy([(0, [alice], [webhook_channel]), (60, [bob], [])]))
    engine.run_due_step(alarm.pk)
    # As if the step's progress were lost after its deliveries were stored: run step 1 again.
    Alarm.objects.filter(pk=alarm.pk).update(current_step=-1)

    assert run_now(alarm) is True

    assert notified(alarm) == [(0, 0, "Alice", "email"), (0, 0, "Ops webhook", "webhook")]


def test_a_step_run_twice_by_a_task_that_sends_at_once_sends_each_message_once(
    start_alarm, make_policy, webhook_channel, webhook_receiver
):
    other = NotificationChannel.objects.create(
        kind="webhook", name="Other webhook", config={"url": webhook_receiver.url}
    )
    alarm = start_alarm(make_policy([(0, [], [webhook_channel, other])]))
    engine.run_due_step(alarm.pk, send_first=True)  # the first written taken and sent
    Alarm.objects.filter(pk=alarm.pk).update(current_step=-1)  # its progress lost

    assert run_now_sending(alarm) is True

    rows = Delivery.objects.filter(alarm=alarm)
    assert sorted(rows.values_list("channel__name", "status")) == [
        ("Ops webhook", "sent"), ("Other webhook", "sent")]  # fmt: skip
    assert len(webhook_receiver.requests) == 2


def run_now_sending(alarm) -> bool:
    make_due(alarm)
    return engine.run_due_step(alarm.pk, send_first=True)


def test_a_step_whose_persons_are_all_inactive_is_skipped_and_the_next_runs_at_once(
    start_alarm, make_policy, make_person, bob
):
    away = make_person("Away", active=False)
    alarm = start_alarm(make_policy([(0, [away], []), (300, [bob], []), (300, [bob], [])]))

    engine.run_due_step(alarm.pk)

    assert notified(alarm) == [(0, 1, "Bob", "email")]
    alarm = fresh(alarm)
    assert kinds(alarm)[-2:] == ["step_skipped", "step_notified"]
    assert alarm.events.get(kind="step_skipped").text == "Step 1 of 3, round 1: nobody to notify"
    assert alarm.current_step == 1


def test_a_step_whose_persons_have_no_email_is_skipped(start_alarm, make_policy, make_person, bob):
    no_email = make_person("Nomail", email="")
    alarm = start_alarm(make_policy([(0, [no_email], []), (300, [bob], []), (300, [bob], [])]))

    engine.run_due_step(alarm.pk)

    assert notified(alarm) == [(0, 1, "Bob", "email")]
    assert "step_skipped" in kinds(alarm)


def test_a_disabled_channel_alone_makes_a_step_skipped(
    start_alarm, make_policy, webhook_channel, bob
):
    webhook_channel.enabled = False
    webhook_channel.save()
    alarm = start_alarm(make_policy([(0, [], [webhook_channel]), (300, [bob], [])]))

    engine.run_due_step(alarm.pk)

    assert notified(alarm) == [(0, 1, "Bob", "email")]


def test_after_the_last_step_the_steps_repeat_after_the_pause_then_escalation_ends(
    start_alarm, make_policy, alice, bob
):
    policy = make_policy(
        [(0, [alice], []), (60, [bob], [])], repeat_count=1, repeat_after_seconds=600
    )
    alarm = start_alarm(policy)
    engine.run_due_step(alarm.pk)
    run_now(alarm)

    pause = fresh(alarm).next_escalation_at - timezone.now()
    assert timedelta(seconds=580) < pause <= timedelta(seconds=600)
    assert engine.run_due_step(alarm.pk) is False, "the repeat must wait for its pause"
    assert "escalation_ended" not in kinds(alarm)

    run_now(alarm)
    assert fresh(alarm).current_round == 1
    run_now(alarm)

    assert notified(alarm) == [
        (0, 0, "Alice", "email"),
        (0, 1, "Bob", "email"),
        (1, 0, "Alice", "email"),
        (1, 1, "Bob", "email"),
    ]
    alarm = fresh(alarm)
    assert kinds(alarm)[-1] == "escalation_ended"
    assert (alarm.status, alarm.next_escalation_at) == ("triggered", None)
    assert engine.run_due_step(alarm.pk) is False


def test_a_skipped_last_step_still_waits_the_pause_before_the_next_round(
    start_alarm, make_policy, make_person, alice
):
    away = make_person("Away", active=False)
    policy = make_policy([(0, [alice], []), (60, [away], [])], repeat_count=1)
    alarm = start_alarm(policy)
    engine.run_due_step(alarm.pk)

    run_now(alarm)

    alarm = fresh(alarm)
    assert kinds(alarm)[-1] == "step_skipped"
    assert (alarm.current_round, alarm.current_step) == (0, 1)
    assert alarm.next_escalation_at - timezone.now() > timedelta(seconds=250)
    assert notified(alarm) == [(0, 0, "Alice", "email")]


def test_without_repeats_escalation_ends_with_the_last_step(start_alarm, make_policy, alice):
    alarm = start_alarm(make_policy([(0, [alice], [])]))

    engine.run_due_step(alarm.pk)

    alarm = fresh(alarm)
    assert kinds(alarm)[-2:] == ["step_notified", "escalation_ended"]
    assert alarm.next_escalation_at is None


def test_an_ack_stops_further_steps(start_alarm, make_policy, alice, bob):
    alarm = start_alarm(make_policy([(0, [alice], []), (60, [bob], [])]))
    engine.run_due_step(alarm.pk)
    token = fresh(alarm).escalation_token

    lifecycle.acknowledge(alarm.pk, Actor("Alice"))

    assert fresh(alarm).next_escalation_at is None
    assert run_now(alarm) is False
    assert engine.run_due_step(alarm.pk, token) is False
    assert notified(alarm) == [(0, 0, "Alice", "email")]


def test_a_resolved_alarm_never_escalates(start_alarm, make_policy, alice):
    alarm = start_alarm(make_policy([(0, [alice], [])]))

    lifecycle.resolve(alarm.pk, SYSTEM)

    assert run_now(alarm) is False
    assert not Delivery.objects.exists()


def test_the_sweeper_runs_every_overdue_step_and_only_those(start_alarm, make_policy, alice, bob):
    due = [start_alarm(make_policy([(0, [alice], [])], name=f"P{i}"), f"D{i}") for i in range(2)]
    later = start_alarm(make_policy([(600, [bob], [])], name="Later"), "Later phone")
    Alarm.objects.update(step_queued_until=timezone.now())  # their tasks' lease is over

    assert engine.sweep() == 2

    assert {d.alarm_id for d in Delivery.objects.all()} == {alarm.pk for alarm in due}
    assert fresh(later).current_step == -1


def test_a_step_due_at_once_is_left_to_its_queued_task_until_the_lease_ends(
    start_alarm, make_policy, alice, settings
):
    alarm = start_alarm(make_policy([(0, [alice], [])]))
    lease = alarm.next_escalation_at + timedelta(seconds=settings.REQUEUE_AFTER_SECONDS)
    assert fresh(alarm).step_queued_until == lease

    assert engine.sweep() == 0  # a worker that is behind still has its task queued
    assert fresh(alarm).current_step == -1

    Alarm.objects.filter(pk=alarm.pk).update(step_queued_until=timezone.now())
    assert engine.sweep() == 1
    assert notified(alarm) == [(0, 0, "Alice", "email")]


def test_when_the_queue_was_lost_the_sweeper_takes_a_queued_step_at_once(
    start_alarm, make_policy, alice
):
    alarm = start_alarm(make_policy([(0, [alice], [])]))
    queue_was_lost()  # the mark is set, as after any earlier sweep
    assert tasks.sweep()["steps"] == 0

    redis_client().delete(QUEUE_MARK)  # Redis restarted empty: the queue and the mark are gone

    assert tasks.sweep()["steps"] == 1
    assert notified(alarm) == [(0, 0, "Alice", "email")]


def test_a_step_whose_countdown_a_worker_holds_is_taken_as_soon_as_it_is_due(
    start_alarm, make_policy, alice
):
    alarm = start_alarm(make_policy([(5, [alice], [])]))  # a worker may die holding its task
    assert fresh(alarm).step_queued_until is None
    make_due(alarm)

    assert engine.sweep() == 1


def test_a_step_whose_task_could_not_be_queued_is_left_to_the_sweeper_at_once(
    make_device, make_policy, alice, private_redis, django_capture_on_commit_callbacks
):
    device, _ = make_device(default_policy=make_policy([(0, [alice], [])]))
    private_redis.stop()
    with broker_at(private_redis.url), django_capture_on_commit_callbacks(execute=True):
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key="k", title="Emergency", device=device, actor=SYSTEM
        ).alarm

    assert fresh(alarm).step_queued_until is None
    assert engine.sweep() == 1
