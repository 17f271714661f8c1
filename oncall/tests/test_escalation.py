"""Escalation steps that target schedules and rotations: resolved when the step runs, the
timeline says who and why, and nobody on call falls back, never silently nowhere."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms import lifecycle
from alarms.models import AlarmEvent
from alarms.tests.test_engine import notified, run_now
from alarms.timeline import SYSTEM
from escalation.models import EscalationPolicy, EscalationStep
from oncall.models import Override, Team
from oncall.plans import SchedulePlan

from .making import rotation, schedule

pytestmark = pytest.mark.django_db
Kind = AlarmEvent.Kind


@pytest.fixture
def crew(make_person):
    return [make_person(name) for name in ("Alice", "Bob", "Carol")]


@pytest.fixture
def alarm_for(make_device):
    def raise_with(*, schedules=(), rotations=(), persons=(), name="Ward"):
        policy = EscalationPolicy.objects.create(name=name)
        step = EscalationStep.objects.create(policy=policy, order=0, delay_seconds=0)
        step.schedules.set(schedules)
        step.rotations.set(rotations)
        step.persons.set(persons)
        device, _ = make_device(f"Phone {name}", default_policy=policy)
        return lifecycle.raise_alarm(
            source="yealink", dedup_key=name, title="Emergency", device=device, actor=SYSTEM
        ).alarm

    return raise_with


def texts(alarm, kind) -> list[str]:
    return list(alarm.events.filter(kind=kind).values_list("text", flat=True))


def test_a_step_pages_whoever_is_on_call_when_it_runs(crew, alarm_for):
    alice, bob, carol = crew
    ward = schedule(dict(person=alice, name="Day and night"))
    alarm = alarm_for(schedules=[ward], persons=[alice])  # Alice named twice: paged once
    # Between the trigger and the step, Carol takes over: the step pages her, not Alice.
    now = timezone.now()
    Override.objects.create(schedule=ward, kind="replace", person=carol, replaces=alice,
                            starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2),
                            note="swap")  # fmt: skip
    assert run_now(alarm)
    assert notified(alarm) == [(0, 0, "Alice", "email"), (0, 0, "Carol", "email")]
    [text] = texts(alarm, Kind.ON_CALL)
    assert text.startswith("Step 1 of 1, round 1: On call in schedule 'Ward': Carol (covers Alice "
                           "(swap), until ")  # fmt: skip


def test_a_rotation_as_a_target(crew, alarm_for):
    nurses = rotation(crew, start=str(timezone.localdate() - timedelta(days=30)), handoff="00:00")
    alarm = alarm_for(rotations=[nurses])
    assert run_now(alarm)
    [text] = texts(alarm, Kind.ON_CALL)
    assert "On call in rotation 'Nurses': " in text and "shift " in text and "of 3" in text
    assert len(notified(alarm)) == 1


def test_nobody_on_call_pages_the_fallback_person(crew, alarm_for):
    alice, bob, carol = crew
    empty = schedule(fallback_person=carol)
    alarm = alarm_for(schedules=[empty])
    assert run_now(alarm)
    assert notified(alarm) == [(0, 0, "Carol", "email")]
    [text] = texts(alarm, Kind.NOBODY_ON_CALL)
    assert "Nobody on call in schedule 'Ward' at " in text
    assert text.endswith(": paging its fallback Carol")


def test_without_a_fallback_person_the_teams_default_policy_takes_the_step(crew, alarm_for):
    alice, bob, carol = crew
    desk = EscalationPolicy.objects.create(name="Front desk")
    first = EscalationStep.objects.create(policy=desk, order=0)
    first.persons.set([bob])
    team = Team.objects.create(name="Reception", default_policy=desk)
    alarm = alarm_for(schedules=[schedule(team=team)])
    assert run_now(alarm)
    assert notified(alarm) == [(0, 0, "Bob", "email")]
    [text] = texts(alarm, Kind.NOBODY_ON_CALL)
    assert text.endswith(": paging the first step of the team's default policy 'Front desk'")


def test_nobody_and_no_fallback_is_said_and_the_step_skipped(alarm_for):
    alarm = alarm_for(schedules=[schedule()])
    assert run_now(alarm)
    [text] = texts(alarm, Kind.NOBODY_ON_CALL)
    assert text.endswith("and it has no fallback: nobody is paged for it")
    assert alarm.events.filter(kind=Kind.STEP_SKIPPED).exists()


def test_a_rota_that_cannot_be_read_still_pages_the_fallback(crew, alarm_for, monkeypatch):
    alice, bob, carol = crew
    broken = schedule(dict(person=alice), fallback_person=carol)

    def fails(self, at):
        raise RuntimeError("a bug in the rota")

    monkeypatch.setattr(SchedulePlan, "evaluate", fails)
    alarm = alarm_for(schedules=[broken])
    assert run_now(alarm)
    assert notified(alarm) == [(0, 0, "Carol", "email")]
    [text] = texts(alarm, Kind.NOBODY_ON_CALL)
    assert "Who is on call in schedule 'Ward' could not be read at " in text
    assert text.endswith(": paging its fallback Carol")
