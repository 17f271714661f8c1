"""The alarm API: the alarm list, detail and actions. (Raise and clear: alarms/sources/tests/.)"""

import uuid

import pytest

from alarms import lifecycle
from alarms.sources.tests.payloads import post
from alarms.timeline import SYSTEM, Actor
from devices.models import Room, Site

pytestmark = pytest.mark.django_db


def open_alarm(title="Fridge too warm", device=None, **fields):
    """An alarm raised the way the API raises one, without HTTP."""
    fields.setdefault("source", "api")
    fields.setdefault("dedup_key", str(uuid.uuid4()))
    return lifecycle.raise_alarm(title=title, device=device, actor=SYSTEM, **fields).alarm


@pytest.fixture
def nurse_client(client, django_user_model):
    """Logged in, but not staff."""
    client.force_login(django_user_model.objects.create_user("nurse", password="x" * 20))
    return client


# --- list and detail ----------------------------------------------------------------------


@pytest.fixture
def two_sites(make_generic_device):
    """Alarms at two sites from two devices, and one raised by a staff member."""
    north, south = Site.objects.create(name="North"), Site.objects.create(name="South")
    phone, _ = make_generic_device("North phone", room=Room.objects.create(site=north, name="Lab"))
    gateway, token = make_generic_device(
        "South gateway", room=Room.objects.create(site=south, name="Ward")
    )
    return {
        "gateway_token": token,
        "north_critical": open_alarm("Lab fire", device=phone, source="yealink"),
        "south_warning": open_alarm("Ward door", device=gateway, severity="warning"),
        "south_resolved": _resolved(open_alarm("Ward fridge", device=gateway, severity="info")),
        "staff": open_alarm("Drill", severity="warning", source="manual"),
    }


def _resolved(alarm):
    return lifecycle.resolve(alarm.pk, SYSTEM).alarm


def titles(response) -> set[str]:
    assert response.status_code == 200
    return {alarm["title"] for alarm in response.json()["results"]}


def test_staff_see_every_alarm(admin_client, two_sites):
    response = admin_client.get("/v1/alarms/")

    assert titles(response) == {"Lab fire", "Ward door", "Ward fridge", "Drill"}
    assert response.json()["count"] == 4


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"status": "resolved"}, {"Ward fridge"}),
        ({"status": "triggered"}, {"Lab fire", "Ward door", "Drill"}),
        ({"severity": "warning"}, {"Ward door", "Drill"}),
        ({"site": "South"}, {"Ward door", "Ward fridge"}),
        ({"source": "yealink"}, {"Lab fire"}),
        ({"site": "South", "status": "triggered"}, {"Ward door"}),
    ],
)
def test_the_alarm_list_filters(admin_client, two_sites, query, expected):
    assert titles(admin_client.get("/v1/alarms/", query)) == expected


def test_a_device_sees_only_its_own_alarms(client, two_sites):
    token = two_sites["gateway_token"]

    response = client.get("/v1/alarms/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert titles(response) == {"Ward door", "Ward fridge"}


def test_a_device_cannot_read_another_devices_alarm(client, two_sites):
    response = client.get(
        f"/v1/alarms/{two_sites['north_critical'].pk}",
        HTTP_AUTHORIZATION=f"Bearer {two_sites['gateway_token']}",
    )

    assert response.status_code == 404
    assert "error" in response.json()


def test_the_alarm_list_needs_a_login_or_a_token(client, two_sites):
    response = client.get("/v1/alarms/")

    assert response.status_code == 401
    assert "error" in response.json()


def test_a_logged_in_user_who_is_not_staff_is_403_json(nurse_client, two_sites):
    response = nurse_client.get("/v1/alarms/")

    assert response.status_code == 403
    assert "error" in response.json()


def test_a_non_staff_user_cannot_acknowledge(nurse_client, two_sites):
    alarm = two_sites["north_critical"]

    response = post(nurse_client, f"/v1/alarms/{alarm.pk}/acknowledge", {})

    assert response.status_code == 403
    assert "error" in response.json()
    alarm.refresh_from_db()
    assert alarm.status == "triggered"


def test_the_alarm_detail_has_the_timeline(admin_client, two_sites):
    alarm = two_sites["south_resolved"]

    response = admin_client.get(f"/v1/alarms/{alarm.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(alarm.pk)
    assert body["site"] == "South"
    assert [e["kind"] for e in body["events"]] == ["triggered", "routed", "resolved"]


def test_an_unknown_alarm_is_404_json(admin_client, two_sites):
    response = admin_client.get(f"/v1/alarms/{uuid.uuid4()}")

    assert response.status_code == 404
    assert "error" in response.json()


def test_an_alarm_id_that_is_not_a_uuid_is_404_json(admin_client, two_sites):
    response = admin_client.get("/v1/alarms/not-a-uuid")

    assert response.status_code == 404
    assert "error" in response.json()


def test_an_unknown_api_path_is_404_json(admin_client):
    response = admin_client.get("/v1/no/such/thing")

    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


# --- actions ------------------------------------------------------------------------------


def act(client, alarm, action, note=None):
    return post(client, f"/v1/alarms/{alarm.pk}/{action}", {"note": note} if note else {})


def test_acknowledge_with_a_note_records_who_and_why(admin_client, db):
    alarm = open_alarm()

    response = act(admin_client, alarm, "acknowledge", note="On my way")

    assert response.status_code == 200
    assert response.json()["status"] == "acknowledged"
    assert response.json()["changed"] is True
    assert response.json()["acknowledged_by"] == "admin"
    event = alarm.events.get(kind="acknowledged")
    assert (event.text, event.actor, event.user.username) == ("On my way", "admin", "admin")


def test_a_second_acknowledge_changes_nothing_and_says_who_was_first(admin_client, db):
    alarm = open_alarm()
    lifecycle.acknowledge(alarm.pk, Actor("Dana"))

    response = act(admin_client, alarm, "acknowledge")

    assert response.status_code == 200
    assert response.json()["changed"] is False
    assert response.json()["detail"].startswith("already acknowledged by Dana at ")
    assert alarm.events.filter(kind="acknowledged").count() == 1


def test_acknowledge_after_resolve_is_409_json(admin_client, db):
    alarm = _resolved(open_alarm())

    response = act(admin_client, alarm, "acknowledge")

    assert response.status_code == 409
    assert response.json() == {"error": "alarm is already resolved"}
    alarm.refresh_from_db()
    assert alarm.status == "resolved"


def test_resolve_after_acknowledge_closes_the_alarm(admin_client, db):
    alarm = open_alarm()
    act(admin_client, alarm, "acknowledge")

    response = act(admin_client, alarm, "resolve", note="Fridge door was open")

    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    assert response.json()["resolved_by"] == "admin"
    assert alarm.events.last().text == "Fridge door was open"


def test_cancel_closes_an_open_alarm_as_raised_in_error(admin_client, db):
    alarm = open_alarm()

    response = act(admin_client, alarm, "cancel", note="Test press")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["changed"] is True
    assert alarm.events.last().kind == "cancelled"


def test_a_device_may_not_acknowledge_its_own_alarm(client, make_generic_device):
    device, token = make_generic_device()
    alarm = open_alarm(device=device)

    response = post(client, f"/v1/alarms/{alarm.pk}/acknowledge", {}, token)

    assert response.status_code == 403
    assert response.json()["error"].startswith("A device token may not acknowledge alarms")
    alarm.refresh_from_db()
    assert alarm.status == "triggered"


def test_a_note_that_is_too_long_is_400(admin_client, db):
    alarm = open_alarm()

    response = act(admin_client, alarm, "acknowledge", note="x" * 2001)

    assert response.status_code == 400
    assert "note" in response.json()["fields"]
    alarm.refresh_from_db()
    assert alarm.status == "triggered"
