"""The on-call admin: who is on call now on the lists and the team, the rota by week and
month, the quick cover form, reordering a rotation mid-shift, and the preview of a change,
which saves nothing."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from oncall.models import Override, Schedule, ScheduleRule, Team

from .making import on_call, rotation, schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("operator", "op@example.org", "pw"))
    return client


@pytest.fixture
def ward(alice, bob):
    team = Team.objects.create(name="Ward 3")
    return schedule(dict(person=alice, days="mon-fri", start="08:00", end="18:00", name="Day"),
                    name="Ward", team=team)  # fmt: skip


def test_on_call_now_on_the_lists_and_the_team(operator, alice, make_person):
    always = schedule(dict(person=alice), name="Always", team=Team.objects.create(name="Desk"))
    page = operator.get("/admin/oncall/schedule/").content.decode()
    assert "Always" in page and "Alice" in page
    team = operator.get(f"/admin/oncall/team/{always.team.pk}/change/").content.decode()
    assert "Always: Alice" in team


def test_the_rota_by_week_and_month_shows_gaps_and_overrides(operator, ward, alice, bob):
    monday = timezone.localdate() - timedelta(days=timezone.localdate().weekday())
    start = timezone.now() + timedelta(days=1)
    Override.objects.create(schedule=ward, kind="add", person=bob, starts_at=start,
                            ends_at=start + timedelta(hours=1), note="training")  # fmt: skip
    week = operator.get(f"/admin/oncall/schedule/{ward.pk}/rota/").content.decode()
    assert week.count('<th scope="row">') == 7
    assert f"{monday:%a %d %b}" in week
    assert "08:00–18:00 Alice (Day)" in week
    assert 'class="rota-gap">00:00–08:00 nobody' in week
    assert "Bob added" in week and "training" in week
    month = operator.get(f"/admin/oncall/schedule/{ward.pk}/rota/?weeks=5").content.decode()
    assert month.count('<th scope="row">') == 35


def test_cover_a_shift_from_the_form(operator, ward, alice, bob):
    page = operator.get(f"/admin/oncall/schedule/{ward.pk}/cover/").content.decode()
    assert 'type="datetime-local"' in page and "19:00" in page
    day = timezone.localdate() + timedelta(days=7 - timezone.localdate().weekday())  # a Monday
    form = {"kind": "replace", "person": bob.pk, "replaces": alice.pk, "note": "swap",
            "starts_at": f"{day}T09:00", "ends_at": f"{day}T12:00"}  # fmt: skip
    saved = operator.post(f"/admin/oncall/schedule/{ward.pk}/cover/", form)
    assert saved.status_code == 302 and f"rota/?start={day}" in saved["Location"]
    override = Override.objects.get()
    assert override.created_by == "operator"
    assert on_call(ward, override.starts_at + timedelta(hours=1)) == ["Bob"]
    wrong = operator.post(f"/admin/oncall/schedule/{ward.pk}/cover/",
                          {**form, "ends_at": f"{day}T08:00"}).content.decode()  # fmt: skip
    assert "An override ends after it starts." in wrong


def change_form(schedule: Schedule, **rule) -> dict:
    """The schedule's change form as the browser posts it, its one rule changed."""
    current = schedule.rules.get()
    data = {"name": schedule.name, "team": schedule.team_id or "", "description": "",
            "time_zone": schedule.time_zone, "fallback_person": "", "reminder_minutes": 60,
            "handoff_message": "on",
            "rules-TOTAL_FORMS": 1, "rules-INITIAL_FORMS": 1, "rules-MIN_NUM_FORMS": 0,
            "rules-MAX_NUM_FORMS": 1000, "rules-0-id": current.pk, "rules-0-schedule": schedule.pk,
            "rules-0-layer": 0, "rules-0-name": current.name, "rules-0-person": current.person_id,
            "rules-0-rotation": "", "rules-0-days": current.days,
            "rules-0-start_time": f"{current.start_time:%H:%M}",
            "rules-0-end_time": f"{current.end_time:%H:%M}",
            "overrides-TOTAL_FORMS": 0, "overrides-INITIAL_FORMS": 0,
            "overrides-MIN_NUM_FORMS": 0, "overrides-MAX_NUM_FORMS": 1000}  # fmt: skip
    data.update({f"rules-0-{key}": value for key, value in rule.items()})
    return data


def test_a_preview_shows_the_next_four_weeks_and_saves_nothing(operator, ward, alice, bob):
    page = operator.get(f"/admin/oncall/schedule/{ward.pk}/change/").content.decode()
    assert 'formaction="../preview/"' in page
    data = {**change_form(ward, person=bob.pk), "_preview": "1"}
    preview = operator.post(f"/admin/oncall/schedule/{ward.pk}/preview/", data).content.decode()
    assert "08:00–18:00 Alice (Day)" in preview and "08:00–18:00 Bob (Day)" in preview
    assert preview.count('<th scope="row">') in (20, 21)  # 4 weeks' weekdays, and today's?
    assert ScheduleRule.objects.get().person == alice  # nothing saved
    assert "was changed successfully" not in operator.get("/admin/").content.decode()
    same = operator.post(f"/admin/oncall/schedule/{ward.pk}/preview/",
                         {**change_form(ward), "_preview": "1"}).content.decode()  # fmt: skip
    assert 'id="preview-unchanged"' in same
    wrong = operator.post(f"/admin/oncall/schedule/{ward.pk}/preview/",
                          {**change_form(ward, end_time=""), "_preview": "1"})  # fmt: skip
    assert "Give both times of the window" in wrong.content.decode()
    # The preview's own form saves the change.
    saved = operator.post(f"/admin/oncall/schedule/{ward.pk}/change/",
                          change_form(ward, person=bob.pk))  # fmt: skip
    assert saved.status_code == 302 and ScheduleRule.objects.get().person == bob


def test_reordering_a_rotation_in_the_admin_keeps_who_is_on_call(operator, make_person):
    crew = [make_person(name) for name in ("Ann", "Ben", "Cat")]
    nurses = rotation(crew, start=str(timezone.localdate() - timedelta(days=10)), handoff="00:00")
    before = on_call(nurses, timezone.now())
    places = list(nurses.members.order_by("position"))
    data = {"name": nurses.name, "team": "", "time_zone": nurses.time_zone,
            "start_date": str(nurses.start_date), "handoff_time": "00:00", "shift_unit": "days",
            "shift_length": 1, "members-TOTAL_FORMS": 3, "members-INITIAL_FORMS": 3,
            "members-MIN_NUM_FORMS": 0, "members-MAX_NUM_FORMS": 1000}  # fmt: skip
    for index, (place, position) in enumerate(zip(places, (2, 0, 1), strict=True)):
        data.update({f"members-{index}-id": place.pk, f"members-{index}-rotation": nurses.pk,
                     f"members-{index}-person": place.person_id,
                     f"members-{index}-position": position})  # fmt: skip
    saved = operator.post(f"/admin/oncall/rotation/{nurses.pk}/change/", data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert on_call(nurses, timezone.now()) == before
    order = list(nurses.members.order_by("position").values_list("person__name", flat=True))
    assert order == ["Ben", "Cat", "Ann"]


def test_a_rotations_preview_shows_the_new_order_from_the_next_hand_off(operator, make_person):
    crew = [make_person(name) for name in ("Ann", "Ben", "Cat")]
    nurses = rotation(crew, start=str(timezone.localdate() - timedelta(days=10)), handoff="00:00")
    places = list(nurses.members.order_by("position"))
    data = {"name": nurses.name, "team": "", "time_zone": nurses.time_zone,
            "start_date": str(nurses.start_date), "handoff_time": "00:00", "shift_unit": "days",
            "shift_length": 1, "members-TOTAL_FORMS": 3, "members-INITIAL_FORMS": 3,
            "members-MIN_NUM_FORMS": 0, "members-MAX_NUM_FORMS": 1000, "_preview": "1"}  # fmt: skip
    for index, (place, position) in enumerate(zip(places, (1, 0, 2), strict=True)):
        data.update({f"members-{index}-id": place.pk, f"members-{index}-rotation": nurses.pk,
                     f"members-{index}-person": place.person_id,
                     f"members-{index}-position": position})  # fmt: skip
    page = operator.post(f"/admin/oncall/rotation/{nurses.pk}/preview/", data).content.decode()
    assert 'id="preview"' in page
    assert f"{timezone.localdate():%a %d %b}" not in page  # today's shift stays as it is
    assert list(nurses.members.order_by("position").values_list("person__name", flat=True)) == [
        "Ann", "Ben", "Cat"]  # nothing saved  # fmt: skip


def test_the_record_and_the_notices_are_read_only_lists(operator, ward):
    for page in ("oncallshift", "shiftnotice"):
        listing = operator.get(f"/admin/oncall/{page}/")
        assert listing.status_code == 200
        assert f"/admin/oncall/{page}/add/" not in listing.content.decode()
    assert "Recorded shifts" in operator.get("/admin/oncall/").content.decode()
