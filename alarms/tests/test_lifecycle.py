"""The alarm's state machine: raise or repeat, acknowledge, resolve, cancel, and their races."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import SYSTEM, Actor, record
from escalation.models import Silence
from notifications.delivery import sending
from notifications.models import Delivery


def raise_(dedup_key="boiler-room/smoke", **fields):
    fields.setdefault("title", "Smoke in the boiler room")
    fields.setdefault("source", "api")
    return lifecycle.raise_alarm(dedup_key=dedup_key, actor=SYSTEM, **fields)


def kinds(alarm) -> list[str]:
    return list(alarm.events.values_list("kind", flat=True))


def fresh(alarm) -> Alarm:
    return Alarm.objects.get(pk=alarm.pk)


@pytest.mark.django_db
def test_raising_opens_a_triggered_alarm_with_its_timeline():
    outcome = raise_(severity="high", labels={"floor": "-1"})

    assert outcome.changed is True
    alarm = fresh(outcome.alarm)
    assert (alarm.status, alarm.severity, alarm.occurrences) == ("triggered", "high", 1)
    assert alarm.labels == {"floor": "-1"}
    assert kinds(alarm) == ["triggered", "routed"]


@pytest.mark.django_db
def test_raising_an_open_key_again_counts_an_occurrence_and_keeps_the_first_title():
    first = raise_().alarm

    outcome = raise_(title="Different words, same smoke")

    assert outcome.changed is False
    assert outcome.alarm.pk == first.pk
    alarm = fresh(first)
    assert alarm.occurrences == 2
    assert alarm.title == "Smoke in the boiler room"
    assert alarm.last_occurrence_at > alarm.created_at
    assert kinds(alarm) == ["triggered", "routed", "repeated"]


@pytest.mark.django_db
def test_acknowledge_records_who_and_when():
    alarm = raise_().alarm

    outcome = lifecycle.acknowledge(alarm.pk, Actor("Dana"), note="Checking")

    assert outcome.changed is True
    alarm = fresh(alarm)
    assert alarm.status == "acknowledged"
    assert alarm.acknowledged_by == "Dana"
    assert alarm.acknowledged_at is not None
    assert alarm.events.last().text == "Checking"


@pytest.mark.django_db
def test_acknowledging_twice_changes_nothing_the_second_time():
    alarm = raise_().alarm
    lifecycle.acknowledge(alarm.pk, Actor("Dana"))

    outcome = lifecycle.acknowledge(alarm.pk, Actor("Eve"))

    assert outcome.changed is False
    assert outcome.alarm.acknowledged_by == "Dana"
    assert kinds(alarm).count("acknowledged") == 1


@pytest.mark.django_db
def test_an_ack_never_un_resolves():
    alarm = raise_().alarm
    lifecycle.resolve(alarm.pk, Actor("Dana"))

    with pytest.raises(lifecycle.AlarmClosed):
        lifecycle.acknowledge(alarm.pk, Actor("Eve"))

    alarm = fresh(alarm)
    assert alarm.status == "resolved"
    assert alarm.acknowledged_at is None
    assert "acknowledged" not in kinds(alarm)


@pytest.mark.django_db
def test_an_ack_does_not_reopen_a_cancelled_alarm():
    alarm = raise_().alarm
    lifecycle.cancel(alarm.pk, Actor("Dana"))

    with pytest.raises(lifecycle.AlarmClosed):
        lifecycle.acknowledge(alarm.pk, Actor("Eve"))

    assert fresh(alarm).status == "cancelled"


@pytest.mark.django_db
def test_resolve_after_acknowledge_closes_the_alarm():
    alarm = raise_().alarm
    lifecycle.acknowledge(alarm.pk, Actor("Dana"))

    outcome = lifecycle.resolve(alarm.pk, Actor("Dana"), note="Burnt toast")

    assert outcome.changed is True
    alarm = fresh(alarm)
    assert (alarm.status, alarm.resolved_by) == ("resolved", "Dana")
    assert kinds(alarm)[-2:] == ["acknowledged", "resolved"]


@pytest.mark.django_db
def test_cancel_closes_an_open_alarm():
    alarm = raise_().alarm

    outcome = lifecycle.cancel(alarm.pk, Actor("Dana"), note="Raised by mistake")

    assert outcome.changed is True
    alarm = fresh(alarm)
    assert alarm.status == "cancelled"
    assert alarm.resolved_by == "Dana"
    assert alarm.next_escalation_at is None
    assert alarm.events.last().kind == "cancelled"
    assert alarm.events.last().text == "Raised by mistake"


@pytest.mark.django_db
def test_closing_a_closed_alarm_changes_nothing():
    alarm = raise_().alarm
    lifecycle.resolve(alarm.pk, Actor("Dana"))

    outcome = lifecycle.cancel(alarm.pk, Actor("Eve"))

    assert outcome.changed is False
    alarm = fresh(alarm)
    assert (alarm.status, alarm.resolved_by) == ("resolved", "Dana")
    assert kinds(alarm).count("resolved") == 1
    assert "cancelled" not in kinds(alarm)


@pytest.mark.django_db
def test_clear_resolves_the_open_alarm_of_its_key_and_ignores_others():
    alarm = raise_().alarm

    assert lifecycle.clear("some/other/key", SYSTEM) is None
    assert fresh(alarm).status == "triggered"
    assert lifecycle.clear("boiler-room/smoke", SYSTEM).alarm.pk == alarm.pk
    assert fresh(alarm).status == "resolved"


@pytest.mark.django_db
def test_after_resolve_and_the_flap_window_the_same_dedup_key_opens_a_new_alarm():
    first = raise_().alarm
    lifecycle.resolve(first.pk, SYSTEM)
    Alarm.objects.filter(pk=first.pk).update(resolved_at=timezone.now() - timedelta(seconds=301))

    outcome = raise_()

    assert outcome.created is True
    assert outcome.alarm.pk != first.pk
    assert Alarm.objects.filter(dedup_key="boiler-room/smoke").count() == 2


def paged(policy_steps, make_policy, source="yealink", **policy_fields):
    """A default policy with these steps, and an alarm whose first step ran and that was then
    resolved."""
    make_policy(policy_steps, is_default=True, **policy_fields)
    first = raise_(source=source).alarm
    engine.run_due_step(first.pk)
    lifecycle.resolve(first.pk, SYSTEM)
    return first


def step_messages(alarm) -> list[tuple[int, int, str]]:
    rows = Delivery.objects.filter(alarm=alarm, event="notify").order_by("id")
    return list(rows.values_list("cycle", "step", "target"))


@pytest.mark.django_db
def test_a_press_soon_after_a_resolve_reopens_the_alarm_and_escalates_again_from_step_one(
    alice, bob, make_policy
):
    first = paged([(0, [alice], []), (60, [bob], [])], make_policy)

    outcome = raise_(source="yealink")

    alarm = fresh(outcome.alarm)
    assert alarm.pk == first.pk and outcome.reopened and not outcome.created
    assert (alarm.status, alarm.occurrences, alarm.resolved_at) == ("triggered", 2, None)
    assert (alarm.reopen_count, alarm.current_step) == (1, -1)
    assert alarm.reopened_at is not None and alarm.next_escalation_at <= timezone.now()
    reopened = alarm.events.get(kind="reopened")
    assert "escalating from step 1" in reopened.text
    assert kinds(alarm)[-2:] == ["reopened", "routed"]
    engine.run_due_step(alarm.pk)
    assert step_messages(alarm) == [(0, 0, f"person:{alice.pk}"), (1, 0, f"person:{alice.pk}")]
    assert Delivery.objects.get(alarm=alarm, cycle=1).what() == "step 1 after reopening 1"
    assert fresh(alarm).next_escalation_at > timezone.now()  # step 2 (Bob) still to come


@pytest.mark.django_db
def test_a_reopened_alarms_first_message_says_it_fired_again(alice, make_policy, smtp_server):
    first = paged([(0, [alice], [])], make_policy)
    raise_(source="yealink")
    engine.run_due_step(first.pk)

    again = Delivery.objects.get(alarm=first, cycle=1)
    sending.attempt(again.pk)

    subject = smtp_server.messages[-1].content.decode()
    assert "Fired again: [CRITICAL] Smoke in the boiler room" in subject
    assert "FIRED AGAIN after it was resolved" in subject


@pytest.mark.django_db
def test_a_reopened_alarm_was_acknowledged_by_nobody_yet(alice, make_policy):
    first = paged([(0, [alice], [])], make_policy)
    Alarm.objects.filter(pk=first.pk).update(acknowledged_by="Dana", acknowledged_at=timezone.now())

    alarm = fresh(raise_().alarm)

    assert (alarm.acknowledged_by, alarm.acknowledged_at) == ("", None)
    assert lifecycle.acknowledge(alarm.pk, Actor("Eve")).changed


@pytest.mark.django_db
def test_a_reopen_is_routed_anew_and_a_silence_now_in_force_silences_it(alice, make_policy):
    first = paged([(0, [alice], [])], make_policy)
    now = timezone.now()
    Silence.objects.create(
        matchers='{source="yealink"}', starts_at=now, ends_at=now + timedelta(hours=1),
        created_by="ops", comment="maintenance",
    )  # fmt: skip

    alarm = fresh(raise_(source="yealink").alarm)

    assert alarm.pk == first.pk and alarm.silenced_by
    assert alarm.next_escalation_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("source", ["alertmanager", "pagerduty", "metric", "heartbeat"])
def test_a_damped_monitoring_alarm_tells_the_people_already_paged_once_and_runs_no_steps(
    alice, bob, make_policy, source
):
    make_policy([(0, [alice], []), (0, [bob], [])], is_default=True, damp_flapping=True)
    first = raise_(source=source).alarm
    engine.run_due_step(first.pk)
    sent = Delivery.objects.filter(alarm=first)
    sent.filter(person=alice).update(status="sent")  # Alice got hers; Bob's failed
    sent.filter(person=bob).update(status="failed")
    lifecycle.resolve(first.pk, SYSTEM)

    alarm = fresh(raise_(source=source).alarm)

    assert (alarm.status, alarm.reopen_count, alarm.next_escalation_at) == ("triggered", 1, None)
    again = Delivery.objects.filter(alarm=alarm, cycle=1)
    assert list(again.values_list("person", "method", "step")) == [(alice.pk, "email", 0)]
    reopened = alarm.events.get(kind="reopened")
    assert "damped" in reopened.text and "Alice" in reopened.text


@pytest.mark.django_db
def test_damping_never_applies_to_a_device_press(alice, make_policy):
    first = paged([(0, [alice], [])], make_policy, damp_flapping=True)
    Delivery.objects.filter(alarm=first).update(status="sent")

    alarm = fresh(raise_(source="yealink").alarm)

    assert alarm.next_escalation_at is not None
    assert "escalating from step 1" in alarm.events.get(kind="reopened").text


@pytest.mark.django_db
def test_a_damped_alarm_that_paged_nobody_escalates_again(alice, make_policy):
    make_policy([(0, [alice], [])], is_default=True, damp_flapping=True)
    first = raise_(source="alertmanager").alarm
    lifecycle.resolve(first.pk, SYSTEM)  # before its first step ran

    alarm = fresh(raise_(source="alertmanager").alarm)

    assert alarm.next_escalation_at is not None


@pytest.mark.django_db
def test_a_reopened_alarm_keeps_what_the_source_sent_now(make_policy):
    first = raise_(labels={"v": "1"}, details={"startsAt": "10:00"}).alarm
    lifecycle.resolve(first.pk, SYSTEM)

    raise_(labels={"v": "2"}, details={"startsAt": "10:05"}, title="Smoke again")

    alarm = fresh(first)
    assert (alarm.title, alarm.labels, alarm.details) == (
        "Smoke again", {"v": "2"}, {"startsAt": "10:05"})  # fmt: skip


@pytest.mark.django_db
def test_a_cancelled_alarm_is_not_reopened():
    first = raise_().alarm
    lifecycle.cancel(first.pk, SYSTEM)

    assert raise_().alarm.pk != first.pk


@pytest.mark.django_db
def test_the_database_allows_many_closed_alarms_with_one_dedup_key():
    for status in ["resolved", "resolved", "cancelled"]:
        Alarm.objects.create(dedup_key="k", title="old", status=status, source="api")

    Alarm.objects.create(dedup_key="k", title="open", source="api")

    assert Alarm.objects.filter(dedup_key="k").count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize("second_status", ["triggered", "acknowledged"])
def test_the_database_refuses_two_open_alarms_with_one_dedup_key(second_status):
    Alarm.objects.create(dedup_key="k", title="first", source="api")

    with pytest.raises(IntegrityError), transaction.atomic():
        Alarm.objects.create(dedup_key="k", title="second", status=second_status, source="api")

    assert Alarm.objects.filter(dedup_key="k").count() == 1


def run_together(*calls):
    """Run the calls in threads released at the same moment; return results or exceptions."""
    start = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        try:
            start.wait()
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 (the test inspects what each call raised)
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_raises_of_one_key_open_one_alarm_and_count_every_press():
    results = run_together(*[raise_ for _ in range(8)])

    assert not [r for r in results if isinstance(r, Exception)], results
    alarm = Alarm.objects.get()
    assert alarm.occurrences == 8
    assert sum(r.changed for r in results) == 1
    assert {r.alarm.pk for r in results} == {alarm.pk}
    assert kinds(alarm).count("triggered") == 1
    assert kinds(alarm).count("repeated") == 7


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_resolve_wins_over_a_racing_ack():
    alarms = [raise_(dedup_key=f"race-{i}").alarm for i in range(5)]

    for alarm in alarms:
        ack, resolved = run_together(
            lambda pk=alarm.pk: lifecycle.acknowledge(pk, Actor("Dana")),
            lambda pk=alarm.pk: lifecycle.resolve(pk, Actor("Eve")),
        )

        assert isinstance(ack, lifecycle.Outcome | lifecycle.AlarmClosed), ack
        assert resolved.changed is True
        alarm = fresh(alarm)
        assert (alarm.status, alarm.resolved_by) == ("resolved", "Eve")
        assert kinds(alarm)[-1] == "resolved"
        assert alarm.next_escalation_at is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_transitions_lock_on_the_alarm_never_holds_back_its_timeline_entries():
    """A transition holds its alarm's row lock while it updates deliveries that a worker
    recording a message sent may hold; the worker's timeline entry for that alarm must not wait
    for the transition, or the two deadlock (and the message stays unrecorded)."""
    alarm = raise_().alarm
    locked, release = threading.Event(), threading.Event()

    def transition():
        with transaction.atomic():
            lifecycle._locked(alarm.pk)
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=transition)
    holder.start()
    try:
        assert locked.wait(10)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
            record(alarm, AlarmEvent.Kind.DELIVERY_SENT, "Sent to Alice")
    finally:
        release.set()
        holder.join(10)
    assert kinds(alarm)[-1] == "delivery_sent"
