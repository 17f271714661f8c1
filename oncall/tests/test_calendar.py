"""Calendar links: a person's shifts and a schedule's rota as iCalendar files that another
parser reads back, issued once in the admin, refused once revoked, their token kept out of
the logs."""

import re
from datetime import timedelta

import pytest
import vobject
from django.contrib.auth.models import User
from django.utils import timezone
from icalendar import Calendar

from core.logs import redact
from core.tokens import hash_token
from oncall.models import CalendarFeed

from .making import rotation, schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def ward(alice, bob):
    nurses = rotation([alice, bob], start=str(timezone.localdate() - timedelta(days=3)),
                      handoff="07:00", unit="hours", length=12)  # fmt: skip
    return schedule(dict(rotation=nurses, name="Ward"), name="Ward 3")


def issued(**owner) -> str:
    feed = CalendarFeed(**owner)
    token = feed.issue()
    feed.save()
    return token


def fetch(client, token: str):
    return client.get(f"/calendar/{token}.ics")


def test_a_persons_shifts_for_eight_weeks_read_by_another_parser(client, ward, alice):
    response = fetch(client, issued(person=alice))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    parsed = vobject.readOne(response.content.decode())
    events = parsed.vevent_list
    # Alice has one 12-hour shift a day: about 56 in 8 weeks (and the one now, or yesterday's).
    assert 55 <= len(events) <= 58
    assert {e.summary.value for e in events} == {"On call: Ward 3 (Alice)"}
    # The window's first and last shifts may be cut at its ends (a day ago, eight weeks on).
    ordered = sorted(events, key=lambda e: e.dtstart.value)
    for event in ordered:
        length = event.dtend.value - event.dtstart.value
        assert length <= timedelta(hours=13)
        assert event in (ordered[0], ordered[-1]) or length >= timedelta(hours=11)
    assert len({e.uid.value for e in events}) == len(events)
    last = max(e.dtend.value for e in events)
    assert last >= timezone.now() + timedelta(weeks=8) - timedelta(hours=13)
    assert "rotation 'Nurses', shift 1 of 2" in events[1].description.value
    calendar = Calendar.from_ical(response.content)  # the writer's own library agrees
    assert calendar["X-WR-CALNAME"] == "On call: Alice"


def test_a_schedules_rota_has_everyone(client, ward, alice, bob):
    text = fetch(client, issued(schedule=ward)).content.decode()
    people = {e.summary.value for e in vobject.readOne(text).vevent_list}
    assert people == {"On call: Ward 3 (Alice)", "On call: Ward 3 (Bob)"}


def test_revoked_and_unknown_links_get_the_same_404(client, ward, alice):
    token = issued(person=alice)
    CalendarFeed.objects.update(revoked_at=timezone.now())
    for asked in (token, "no-such-token"):
        response = fetch(client, asked)
        assert response.status_code == 404
        assert response.json() == {"error": "no such calendar (revoked, or never issued)"}


def test_issued_in_the_admin_shown_once_stored_as_a_hash(client, ward, alice):
    client.force_login(User.objects.create_superuser("operator", "op@example.org", "pw"))
    page = client.post("/admin/oncall/calendarfeed/add/", {"person": alice.pk}, follow=True)
    url = re.search(r"<code>(http[^<]+/calendar/([^<]+)\.ics)</code>", page.content.decode())
    assert url, page.content.decode()[:3000]
    token = url.group(2)
    feed = CalendarFeed.objects.get()
    assert feed.token_hash == hash_token(token) and token not in str(feed.__dict__)
    assert fetch(client, token).status_code == 200
    assert CalendarFeed.objects.get().last_used_at is not None
    listing = client.get("/admin/oncall/calendarfeed/").content.decode()
    assert token not in listing
    client.post("/admin/oncall/calendarfeed/", {"action": "revoke", "_selected_action": feed.pk})
    assert fetch(client, token).status_code == 404


def test_the_token_is_kept_out_of_the_logs():
    line = 'GET /calendar/Ab3_x-Yz.ics 200 "https://broker.example/calendar/Ab3_x-Yz.ics"'
    assert "Ab3_x-Yz" not in redact(line)
