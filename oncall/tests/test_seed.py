"""The on-call cases through the seed file: loaded as written, answered as in test_who.py,
written back out unchanged, and wrong entries named."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from configuration import seed, seed_export
from oncall.models import Override, Rotation, Schedule
from oncall.plans import plans, segments

from .making import BERLIN, NEW_YORK, at, on_call

pytestmark = pytest.mark.django_db
SEED = (Path(__file__).parent / "fixtures" / "seed.yaml").read_text()


@pytest.fixture
def loaded(db):
    report = seed.load(seed.parse(SEED))
    assert report.counts()["schedules"]["created"] == 3
    return {name: Schedule.objects.get(name=name) for name in ("Ward 3", "Berlin rota",
                                                               "New York rota")}  # fmt: skip


def test_hand_offs_layers_overrides_and_temporary_schedules_from_the_seed(loaded):
    ward = loaded["Ward 3"]
    assert on_call(ward, at("2026-01-05 18:59")) == ["Alice"]
    assert on_call(ward, at("2026-01-05 19:00")) == ["Carol"]  # the override, mid-shift
    assert on_call(ward, at("2026-01-06 01:00")) == ["Alice"]  # and back, mid-shift
    assert on_call(ward, at("2026-01-06 07:00")) == ["Bob"]  # the hand-off
    assert on_call(ward, at("2026-01-10 12:00")) == []  # a Saturday: a gap
    assert on_call(ward, at("2026-12-24 11:00")) == ["Carol"]  # the Christmas layer
    assert on_call(ward, at("2026-12-24 15:00")) != ["Carol"]
    assert on_call(ward, at("2026-12-31 12:00")) == ["Bob"]  # the temporary schedule
    assert on_call(ward, at("2027-01-01 12:00")) == []  # inside it, outside its shifts


@pytest.mark.parametrize(
    "name, tz, spring, autumn",
    [("Berlin rota", BERLIN, "2026-03-29", "2026-10-25"),
     ("New York rota", NEW_YORK, "2026-03-08", "2026-11-01")],
)  # fmt: skip
def test_daylight_saving_both_ways_from_the_seed(loaded, name, tz, spring, autumn):
    plan = plans()[("schedule", loaded[name].pk)]
    for night, hours in ((spring, 11), (autumn, 13)):
        morning = at(f"{night} 07:00", tz)
        [shift] = [s for s in segments(plan, morning - timedelta(hours=14), morning)
                   if s.ends_at == morning]  # fmt: skip
        assert shift.ends_at - shift.starts_at == timedelta(hours=hours)


def test_a_reordered_rotation_in_the_seed_keeps_who_is_on_call(loaded):
    nurses = Rotation.objects.get(name="Nurses")
    now = timezone.now()
    before = on_call(nurses, now)
    old = "participants: [Alice, Bob]\n  - name: Berlin"
    seed.load(seed.parse(SEED.replace(old, old.replace("Alice, Bob", "Bob, Carol, Alice"))))
    assert on_call(nurses, now) == before
    assert list(nurses.members.values_list("person__name", flat=True)) == ["Bob", "Carol", "Alice"]


def test_the_export_loads_back_unchanged(loaded):
    document = seed_export.export()
    ward = next(s for s in document["schedules"] if s["name"] == "Ward 3")
    christmas = {
        "layer": 1,
        "name": "Christmas",
        "person": "Carol",
        "start_time": "10:00",
        "end_time": "14:00",
        "active_from": "2026-12-24",
        "active_until": "2026-12-26",
    }
    assert ward["rules"][0] == christmas
    report = seed.load(seed.parse(seed_export.dump(document)))
    changed = {kind: states["created"] + states["updated"]
               for kind, states in report.counts().items()}  # fmt: skip
    assert not any(changed.values()), changed


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{name: X, rules: [{person: Alice, rotation: Nurses}]}",
         'schedules[3] "X": rules[0]: A rule names a person or a rotation (one of them).'),
        ("{name: X, rules: [{person: Alice, start_time: '19:00'}]}",
         "rules[0]: Give both times of the window, or neither (all day)."),
        ("{name: X, rules: [{person: Nobody}]}",
         'rules[0].person: person "Nobody" does not exist'),
        ("{name: X, overrides: [{kind: add, person: Bob, starts_at: soon}]}",
         "overrides[0].starts_at: must be a date and time, e.g. 2026-12-24 18:00"),
        ("{name: X, overrides: [{kind: replace, person: Bob, starts_at: '2027-01-01 10:00',"
         " ends_at: '2027-01-01 12:00'}]}",
         "overrides[0]: A replacing override names who covers and for whom."),
        ("{name: X, rules: [{person: Alice, when: always}]}",
         "rules[0]: unknown key(s) when"),
    ],
)  # fmt: skip
def test_wrong_entries_are_named_and_nothing_is_stored(loaded, entry, message):
    text = SEED.replace("policies:\n", f"  - {entry}\npolicies:\n")
    with pytest.raises(seed.SeedError) as caught:
        seed.load(seed.parse(text))
    assert message in str(caught.value)
    assert not Schedule.objects.filter(name="X").exists()


def test_loading_the_seed_again_changes_nothing(loaded):
    report = seed.load(seed.parse(SEED))
    assert not report.changed, report.counts()
    assert Override.objects.count() == 1
