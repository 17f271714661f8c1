"""The JSON alarm API: raise and clear by device token, and the alarm list, detail and actions."""

import json
import uuid
from pathlib import Path

import pytest

from alarms import lifecycle
from alarms.models import Alarm
from alarms.timeline import SYSTEM, Actor
from devices.models import Device, Room, Site

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def make_device(make_device):
    def make(*args, **fields):
        fields.setdefault("kind", Device.Kind.GENERIC)
        return make_device(*args, **fields)

    return make


def post(client, path, body, token=None, **extra):
    if token:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data, content_type="application/json", **extra)


def raise_(client, body, token):
    return post(client, "/v1/alarms/raise", body, token)


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


# --- raise and clear ----------------------------------------------------------------------


def test_raising_a_fixture_payload_creates_an_alarm(client, make_device):
    device, token = make_device()

    response = raise_(client, fixture("raise_panic_button.json"), token)

    assert response.status_code == 201
    body = response.json()
    assert body["created"] is True
    assert body["status"] == "triggered"
    alarm = Alarm.objects.get(pk=body["alarm_id"])
    assert alarm.title == "Panic button pressed: Ward 3, bed 12"
    assert alarm.source == "panic-button"
    assert alarm.severity == "critical"
    assert alarm.labels["button"] == "PB-0312"
    assert alarm.device == device
    assert alarm.room == device.room
    assert alarm.events.first().kind == "triggered"


def test_raising_the_same_dedup_key_again_counts_an_occurrence(client, make_device):
    _, token = make_device()
    first = raise_(client, fixture("raise_panic_button.json"), token).json()

    second = raise_(client, fixture("raise_panic_button.json"), token)

    assert second.status_code == 200
    assert second.json()["alarm_id"] == first["alarm_id"]
    assert second.json()["created"] is False
    assert second.json()["occurrences"] == 2
    assert Alarm.objects.count() == 1


def test_raising_without_a_dedup_key_opens_a_new_alarm_each_time(client, make_device):
    _, token = make_device()
    body = {"title": "Door forced open"}

    ids = {raise_(client, body, token).json()["alarm_id"] for _ in range(2)}

    assert len(ids) == 2


def test_the_same_dedup_key_from_two_devices_opens_two_alarms(client, make_device):
    _, token_a = make_device("Gateway A")
    _, token_b = make_device("Gateway B")
    body = fixture("raise_ups_on_battery.json")

    a = raise_(client, body, token_a)
    b = raise_(client, body, token_b)

    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["alarm_id"] != b.json()["alarm_id"]
    assert set(Alarm.objects.values_list("device__name", flat=True)) == {"Gateway A", "Gateway B"}


def test_raising_without_a_token_is_401_json(client, make_device):
    make_device()

    response = raise_(client, fixture("raise_panic_button.json"), token=None)

    assert response.status_code == 401
    assert "error" in response.json()
    assert not Alarm.objects.exists()


def test_raising_with_a_wrong_token_is_401_json(client, make_device):
    make_device()

    response = raise_(client, fixture("raise_panic_button.json"), token="wrong")

    assert response.status_code == 401
    assert "error" in response.json()
    assert not Alarm.objects.exists()


def test_raising_with_a_disabled_devices_token_is_401_json(client, make_device):
    _, token = make_device(enabled=False)

    response = raise_(client, fixture("raise_panic_button.json"), token)

    assert response.status_code == 401
    assert "error" in response.json()


def test_malformed_json_is_400_json(client, make_device):
    _, token = make_device()

    response = raise_(client, '{"title": "unterminated', token)

    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert not Alarm.objects.exists()


def test_a_raise_without_a_title_is_400_naming_the_field(client, make_device):
    _, token = make_device()

    response = raise_(client, {"severity": "critical"}, token)

    assert response.status_code == 400
    assert "title" in response.json()["fields"]
    assert not Alarm.objects.exists()


def test_an_unknown_severity_is_400_naming_the_field(client, make_device):
    _, token = make_device()

    response = raise_(client, {"title": "Smoke", "severity": "apocalyptic"}, token)

    assert response.status_code == 400
    assert "severity" in response.json()["fields"]


def test_labels_that_are_not_an_object_are_400(client, make_device):
    _, token = make_device()

    response = raise_(client, {"title": "Smoke", "labels": ["ward", "3"]}, token)

    assert response.status_code == 400
    assert "labels" in response.json()["fields"]


def test_too_many_labels_are_400(client, make_device):
    _, token = make_device()
    labels = {f"label{i}": "x" for i in range(65)}

    response = raise_(client, {"title": "Smoke", "labels": labels}, token)

    assert response.status_code == 400
    assert "labels" in response.json()["fields"]


def test_a_label_that_is_not_a_string_is_400(client, make_device):
    _, token = make_device()

    response = raise_(client, {"title": "Smoke", "labels": {"floor": 3}}, token)

    assert response.status_code == 400
    assert "labels" in response.json()["fields"]


def test_a_body_over_the_upload_limit_is_413_json(client, make_device, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    _, token = make_device()
    body = {"title": "Smoke", "message": "x" * 2000}

    response = raise_(client, body, token)

    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert not Alarm.objects.exists()


def test_clear_resolves_the_open_alarm(client, make_device):
    _, token = make_device()
    alarm_id = raise_(client, fixture("raise_ups_on_battery.json"), token).json()["alarm_id"]

    response = post(client, "/v1/alarms/clear", fixture("clear_ups_on_battery.json"), token)

    assert response.status_code == 200
    assert response.json() == {"alarm_id": alarm_id, "status": "resolved"}
    alarm = Alarm.objects.get(pk=alarm_id)
    assert alarm.status == "resolved"
    assert alarm.resolved_by == "device Desk phone 1"
    assert alarm.events.last().text.startswith("Mains power restored")


def test_clear_with_an_unknown_dedup_key_is_404_json(client, make_device):
    _, token = make_device()

    response = post(client, "/v1/alarms/clear", fixture("clear_ups_on_battery.json"), token)

    assert response.status_code == 404
    assert "error" in response.json()


def test_a_device_cannot_clear_another_devices_alarm(client, make_device):
    _, token_a = make_device("Gateway A")
    _, token_b = make_device("Gateway B")
    alarm_id = raise_(client, fixture("raise_ups_on_battery.json"), token_a).json()["alarm_id"]

    response = post(client, "/v1/alarms/clear", fixture("clear_ups_on_battery.json"), token_b)

    assert response.status_code == 404
    assert Alarm.objects.get(pk=alarm_id).status == "triggered"


def test_raise_after_clear_and_the_flap_window_opens_a_new_alarm(client, make_device, settings):
    settings.FLAP_WINDOW_SECONDS = 0
    _, token = make_device()
    first = raise_(client, fixture("raise_ups_on_battery.json"), token).json()["alarm_id"]
    post(client, "/v1/alarms/clear", fixture("clear_ups_on_battery.json"), token)

    again = raise_(client, fixture("raise_ups_on_battery.json"), token)

    assert again.status_code == 201
    assert again.json()["alarm_id"] != first


# --- list and detail ----------------------------------------------------------------------


@pytest.fixture
def two_sites(make_device):
    """Alarms at two sites from two devices, and one raised by a staff member."""
    north, south = Site.objects.create(name="North"), Site.objects.create(name="South")
    phone, _ = make_device("North phone", room=Room.objects.create(site=north, name="Lab"))
    gateway, token = make_device("South gateway", room=Room.objects.create(site=south, name="Ward"))
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


def test_a_device_may_not_acknowledge_its_own_alarm(client, make_device):
    device, token = make_device()
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
