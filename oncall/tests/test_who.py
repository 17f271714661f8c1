"""Who is on call: hand-offs, layers, overrides and temporary schedules, daylight-saving
changes both ways, reordering mid-shift, gaps, and the recorded past."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from oncall import history, rotations
from oncall.models import OnCallShift, TemporarySchedule, TemporaryShift
from oncall.plans import plans, segments
from oncall.who import stretches, who_is_on_call

from .making import BERLIN, NEW_YORK, at, on_call, override, rotation, schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew(make_person):
    return [make_person(name) for name in ("Alice", "Bob", "Carol", "Dave", "Erin")]


def test_a_daily_rotation_hands_off_at_its_time_and_wraps(crew):
    alice, bob, carol = crew[:3]
    nurses = rotation([alice, bob, carol], start="2026-01-05", handoff="08:00")
    assert on_call(nurses, at("2026-01-05 08:00")) == ["Alice"]
    assert on_call(nurses, at("2026-01-06 07:59")) == ["Alice"]
    assert on_call(nurses, at("2026-01-06 08:00")) == ["Bob"]
    assert on_call(nurses, at("2026-01-07 12:00")) == ["Carol"]
    assert on_call(nurses, at("2026-01-08 08:00")) == ["Alice"]  # wrapped
    assert on_call(nurses, at("2026-01-05 07:59")) == ["Carol"]  # before the anchor: backwards
    answer = who_is_on_call("rotation", nurses.pk, at("2026-01-07 12:00"))
    assert answer.people[0].why == "rotation 'Nurses', shift 3 of 3"
    assert answer.until[answer.people[0].person_id] == at("2026-01-08 08:00")


def test_weekly_and_hourly_rotations(crew):
    weekly = rotation(crew[:2], start="2026-01-05", handoff="09:00", unit="weeks", length=2)
    assert on_call(weekly, at("2026-01-18 23:00")) == ["Alice"]
    assert on_call(weekly, at("2026-01-19 09:00")) == ["Bob"]
    hourly = rotation(crew[:3], start="2026-01-05", handoff="07:00", unit="hours", length=12,
                      name="Day and night")  # fmt: skip
    assert on_call(hourly, at("2026-01-05 18:59")) == ["Alice"]
    assert on_call(hourly, at("2026-01-05 19:00")) == ["Bob"]
    assert on_call(hourly, at("2026-01-06 07:00")) == ["Carol"]


@pytest.mark.parametrize(
    "tz, spring, autumn",
    [(BERLIN, "2026-03-29", "2026-10-25"), (NEW_YORK, "2026-03-08", "2026-11-01")],
)
def test_wall_clock_hand_offs_across_daylight_saving_both_ways(crew, tz, spring, autumn):
    """A 12-hour rota hands off at 07:00 and 19:00 local time on both change nights: the
    night the clocks go forward is 11 hours long, the night they go back 13."""
    alice, bob = crew[:2]
    rota = rotation([alice, bob], start="2026-01-05", handoff="07:00", unit="hours", length=12,
                    tz=tz)  # fmt: skip
    ward = schedule(dict(rotation=rota), tz=tz)
    for night, hours in ((spring, 11), (autumn, 13)):
        before = at(f"{night} 00:00", tz) - timedelta(days=1)
        evening = at(f"{night} 19:00", tz) - timedelta(days=1)
        morning = at(f"{night} 07:00", tz)
        stretches = segments(plans()[("schedule", ward.pk)], before, morning + timedelta(hours=1))
        night_shift = next(s for s in stretches if s.starts_at == evening)
        assert night_shift.ends_at == morning
        assert night_shift.ends_at - night_shift.starts_at == timedelta(hours=hours)
        assert on_call(ward, morning - timedelta(minutes=1)) != on_call(ward, morning)


CHANGE_EVES = [(BERLIN, "2026-03-28"), (NEW_YORK, "2026-03-07"),
               (BERLIN, "2026-10-24"), (NEW_YORK, "2026-10-31")]  # fmt: skip


@pytest.mark.parametrize("tz, night", CHANGE_EVES)
def test_a_night_rule_keeps_its_hours_on_the_change_nights(crew, tz, night):
    """19:00–07:00 belongs to the day it starts, whatever the clocks do in between."""
    alice, bob = crew[:2]
    ward = schedule(dict(person=alice, start="07:00", end="19:00"),
                    dict(person=bob, start="19:00", end="07:00", name="Night"), tz=tz)  # fmt: skip
    evening = at(f"{night} 19:00", tz)
    morning = at(night, tz).date() + timedelta(days=1)
    morning = at(f"{morning} 07:00", tz)
    assert on_call(ward, evening - timedelta(minutes=1)) == ["Alice"]
    assert on_call(ward, evening) == ["Bob"]
    assert on_call(ward, morning - timedelta(minutes=1)) == ["Bob"]
    assert on_call(ward, morning) == ["Alice"]
    answer = who_is_on_call("schedule", ward.pk, evening + timedelta(hours=4))
    assert answer.people[0].why == "Night"
    assert answer.until[bob.pk] == morning


def test_a_rule_at_a_skipped_hour_starts_when_the_clocks_have_jumped(crew):
    alice = crew[0]
    ward = schedule(dict(person=alice, start="02:30", end="05:00"))
    assert on_call(ward, at("2026-03-29 01:59")) == []
    assert on_call(ward, at("2026-03-29 03:00")) == ["Alice"]
    assert on_call(ward, at("2026-03-30 02:30")) == ["Alice"]


def test_the_highest_layer_with_a_rule_holding_decides(crew):
    alice, bob, carol = crew[:3]
    ward = schedule(
        dict(person=alice, days="mon-fri", start="08:00", end="18:00", layer=0),
        dict(person=bob, days="mon-fri", start="08:00", end="18:00", layer=0),
        dict(person=carol, start="10:00", end="14:00", layer=1, name="Christmas",
             active_from="2026-12-24", active_until="2026-12-26"),
    )  # fmt: skip
    assert on_call(ward, at("2026-12-23 11:00")) == ["Alice", "Bob"]
    assert on_call(ward, at("2026-12-24 09:00")) == ["Alice", "Bob"]  # layer 1 not holding yet
    assert on_call(ward, at("2026-12-24 11:00")) == ["Carol"]
    assert on_call(ward, at("2026-12-27 11:00")) == []  # a Sunday: the weekly layer has nobody


def test_overrides_that_start_and_end_mid_shift(crew):
    alice, bob, carol, dave = crew[:4]
    nurses = rotation([alice, bob], start="2026-01-05", handoff="07:00")
    ward = schedule(dict(rotation=nurses), dict(person=dave, days="sat,sun"))
    # Alice's shift is Mon 07:00 – Tue 07:00.
    override(ward, "replace", "2026-01-05 19:00", "2026-01-06 01:00", carol, alice, note="swap")
    assert on_call(ward, at("2026-01-05 18:59")) == ["Alice"]
    assert on_call(ward, at("2026-01-05 19:00")) == ["Carol"]
    answer = who_is_on_call("schedule", ward.pk, at("2026-01-05 22:00"))
    assert answer.people[0].why == "covers Alice (swap)"
    assert answer.until[carol.pk] == at("2026-01-06 01:00")
    assert on_call(ward, at("2026-01-06 01:00")) == ["Alice"]
    # A replacement of someone not on call changes nothing; remove and add do what they say.
    override(ward, "replace", "2026-01-06 09:00", "2026-01-06 10:00", carol, alice)
    assert on_call(ward, at("2026-01-06 09:30")) == ["Bob"]
    override(ward, "remove", "2026-01-06 12:00", "2026-01-06 13:00", replaces=bob)
    assert on_call(ward, at("2026-01-06 12:30")) == []
    override(ward, "add", "2026-01-10 12:00", "2026-01-10 13:00", person=carol)
    assert on_call(ward, at("2026-01-10 12:30")) == ["Bob", "Dave", "Carol"]  # a Saturday


def test_overlapping_overrides_for_one_person_are_refused(crew):
    alice, bob, carol = crew[:3]
    ward = schedule(dict(person=alice))
    override(ward, "replace", "2026-01-05 19:00", "2026-01-06 07:00", bob, alice)
    with pytest.raises(ValidationError, match="overlaps"):
        override(ward, "add", "2026-01-06 06:00", "2026-01-06 08:00", person=bob)
    with pytest.raises(ValidationError, match="ends after it starts"):
        override(ward, "add", "2026-01-06 06:00", "2026-01-06 06:00", person=carol)


def test_a_temporary_schedule_replaces_rules_and_overrides(crew):
    alice, bob, carol = crew[:3]
    ward = schedule(dict(person=alice))
    override(ward, "add", "2026-12-24 00:00", "2026-12-27 00:00", person=bob)
    closed = TemporarySchedule.objects.create(
        schedule=ward, starts_at=at("2026-12-24 18:00"), ends_at=at("2026-12-26 18:00")
    )
    TemporaryShift.objects.create(
        temporary=closed, person=carol, starts_at=at("2026-12-24 18:00"),
        ends_at=at("2026-12-25 18:00"),
    )  # fmt: skip
    assert on_call(ward, at("2026-12-24 17:00")) == ["Alice", "Bob"]
    assert on_call(ward, at("2026-12-24 20:00")) == ["Carol"]
    assert on_call(ward, at("2026-12-26 08:00")) == []  # inside the window, outside its shifts
    assert on_call(ward, at("2026-12-26 18:00")) == ["Alice", "Bob"]


def test_reordering_mid_shift_keeps_who_is_on_call(crew):
    alice, bob, carol = crew[:3]
    nurses = rotation([alice, bob, carol], start="2026-01-05", handoff="08:00")
    now = at("2026-01-06 12:00")  # Bob's shift
    rotations.set_participants(nurses, [carol.pk, alice.pk, bob.pk], now)
    assert on_call(nurses, now) == ["Bob"]
    assert on_call(nurses, at("2026-01-07 08:00")) == ["Carol"]  # the new order from here on
    assert on_call(nurses, at("2026-01-08 08:00")) == ["Alice"]
    # Bob leaves mid-shift: the next in the old order takes his shift.
    rotations.set_participants(nurses, [carol.pk, alice.pk], now)
    assert on_call(nurses, now) == ["Carol"]


def test_a_gap_is_nobody_and_its_stretch_is_visible(crew):
    alice = crew[0]
    ward = schedule(dict(person=alice, days="mon-fri", start="08:00", end="18:00"))
    assert on_call(ward, at("2026-01-10 12:00")) == []
    answer = who_is_on_call("schedule", ward.pk, at("2026-01-10 12:00"))
    assert answer.nobody and answer.changes_at == at("2026-01-12 08:00")
    stretches = segments(plans()[("schedule", ward.pk)], at("2026-01-09 00:00"),
                         at("2026-01-13 00:00"))  # fmt: skip
    gaps = [(s.starts_at, s.ends_at) for s in stretches if not s.people]
    assert (at("2026-01-09 18:00"), at("2026-01-12 08:00")) in gaps


def test_inactive_people_are_not_on_call(crew):
    alice, bob = crew[:2]
    bob.active = False
    bob.save()
    ward = schedule(dict(person=alice), dict(person=bob))
    assert on_call(ward, at("2026-01-10 12:00")) == ["Alice"]


def test_the_past_is_what_was_recorded_not_recomputed(crew):
    alice, bob = crew[:2]
    ward = schedule(dict(person=alice))
    started = timezone.now() - timedelta(hours=3)
    history.record(started)
    history.record(started + timedelta(hours=1))
    assert OnCallShift.objects.get(schedule=ward).person_name == "Alice"
    ward.rules.update(person=bob)  # a change today does not rewrite who was on call then
    ward.save()
    past = who_is_on_call("schedule", ward.pk, started + timedelta(minutes=30))
    assert past.recorded and [c.name for c in past.people] == ["Alice"]
    # The next record writes the stretch since the last one as the rules now say.
    history.record(started + timedelta(hours=2))
    shifts = list(OnCallShift.objects.filter(schedule=ward).values_list(
        "person_name", "starts_at", "ends_at"))  # fmt: skip
    assert shifts == [("Alice", started, started + timedelta(hours=1)),
                      ("Bob", started + timedelta(hours=1), None)]  # fmt: skip
    assert on_call(ward, timezone.now()) == ["Bob"]


def test_stretches_join_the_recorded_past_and_the_computed_future(crew):
    alice, bob = crew[:2]
    ward = schedule(dict(person=alice))
    started = timezone.now() - timedelta(hours=3)
    history.record(started)
    history.record(started + timedelta(hours=2))
    ward.rules.update(person=bob)
    ward.save()
    found = stretches(
        "schedule", ward.pk, started - timedelta(hours=1), started + timedelta(days=1)
    )
    assert [(s.starts_at, [c.name for c in s.people]) for s in found] == [
        (started - timedelta(hours=1), ["Bob"]),  # before the record began: computed
        (started, ["Alice"]),  # recorded
        (started + timedelta(hours=2), ["Bob"]),  # not recorded yet: computed
    ]


def test_a_kept_answer_is_not_reused_past_what_it_looked_at(crew):
    fortnight = rotation(crew[:2], start="2026-01-05", unit="weeks", length=2)
    assert on_call(fortnight, at("2026-01-06 12:00")) == ["Alice"]
    assert on_call(fortnight, at("2026-01-25 12:00")) == ["Bob"]  # beyond the 8 days looked at


def test_an_inactive_person_on_a_temporary_schedule_is_not_on_call(crew):
    alice, bob = crew[:2]
    ward = schedule(dict(person=alice))
    closed = TemporarySchedule.objects.create(schedule=ward, starts_at=at("2026-12-24 18:00"),
                                              ends_at=at("2026-12-26 18:00"))  # fmt: skip
    TemporaryShift.objects.create(temporary=closed, person=bob, starts_at=at("2026-12-24 18:00"),
                                  ends_at=at("2026-12-25 18:00"))  # fmt: skip
    bob.active = False
    bob.save()
    assert on_call(ward, at("2026-12-24 20:00")) == []
