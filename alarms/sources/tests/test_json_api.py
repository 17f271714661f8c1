"""The JSON raise and clear (fixtures/json_api/), by device token, through the HTTP API."""

import pytest

from alarms.models import Alarm

from .payloads import payload, post

pytestmark = pytest.mark.django_db


def fixture(name: str) -> dict:
    return payload("json_api", name.removesuffix(".json"))


def raise_(client, body, token):
    return post(client, "/v1/alarms/raise", body, token)


# --- raise and clear ----------------------------------------------------------------------


def test_raising_a_fixture_payload_creates_an_alarm(client, make_generic_device):
    device, token = make_generic_device()

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


def test_raising_the_same_dedup_key_again_counts_an_occurrence(client, make_generic_device):
    _, token = make_generic_device()
    first = raise_(client, fixture("raise_panic_button.json"), token).json()

    second = raise_(client, fixture("raise_panic_button.json"), token)

    assert second.status_code == 200
    assert second.json()["alarm_id"] == first["alarm_id"]
    assert second.json()["created"] is False
    assert second.json()["occurrences"] == 2
    assert Alarm.objects.count() == 1


def test_raising_without_a_dedup_key_opens_a_new_alarm_each_time(client, make_generic_device):
    _, token = make_generic_device()
    body = {"title": "Door forced open"}

    ids = {raise_(client, body, token).json()["alarm_id"] for _ in range(2)}

    assert len(ids) == 2


def test_the_same_dedup_key_from_two_devices_opens_two_alarms(client, make_generic_device):
    _, token_a = make_generic_device("Gateway A")
    _, token_b = make_generic_device("Gateway B")
    body = fixture("raise_ups_on_battery.json")

    a = raise_(client, body, token_a)
    b = raise_(client, body, token_b)

    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["alarm_id"] != b.json()["alarm_id"]
    assert set(Alarm.objects.values_list("device__name", flat=True)) == {"Gateway A", "Gateway B"}


def test_raising_without_a_token_is_401_json(client, make_generic_device):
    make_generic_device()

    response = raise_(client, fixture("raise_panic_button.json"), token=None)

    assert response.status_code == 401
    assert "error" in response.json()
    assert not Alarm.objects.exists()


def test_raising_with_a_wrong_token_is_401_json(client, make_generic_device):
    make_generic_device()

    response = raise_(client, fixture("raise_panic_button.json"), token="wrong")

    assert response.status_code == 401
    assert "error" in response.json()
    assert not Alarm.objects.exists()


def test_raising_with_a_disabled_devices_token_is_401_json(client, make_generic_device):
    _, token = make_generic_device(enabled=False)

    response = raise_(client, fixture("raise_panic_button.json"), token)

    assert response.status_code == 401
    assert "error" in response.json()


def test_malformed_json_is_400_json(client, make_generic_device):
    _, token = make_generic_device()

    response = raise_(client, '{"title": "unterminated', token)

    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert not Alarm.objects.exists()


def test_a_raise_without_a_title_is_400_naming_the_field(client, make_generic_device):
    _, token = make_generic_device()

    response = raise_(client, {"severity": "critical"}, token)

    assert response.status_code == 400
    assert "title" in response.json()["fields"]
    assert not Alarm.objects.exists()


def test_an_unknown_severity_is_400_naming_the_field(client, make_generic_device):
    _, token = make_generic_device()

    response = raise_(client, {"title": "Smoke", "severity": "apocalyptic"}, token)

    assert response.status_code == 400
    assert "severity" in response.json()["fields"]


def test_labels_that_are_not_an_object_are_400(client, make_generic_device):
    _, token = make_generic_device()

    response = raise_(client, {"title": "Smoke", "labels": ["ward", "3"]}, token)

    assert response.status_code == 400
    assert "labels" in response.json()["fields"]


def test_too_many_labels_are_400(client, make_generic_device):
    _, token = make_generic_device()
    labels = {f"label{i}": "x" for i in range(65)}

    response = raise_(client, {"title": "Smoke", "labels": labels}, token)

    assert response.status_code == 400
    assert "labels" in response.json()["fields"]


def test_a_label_that_is_not_a_string_is_400(client, make_generic_device):
    _, token = make_generic_device()

    response = raise_(client, {"title": "Smoke", "labels": {"floor": 3}}, token)

    assert response.status_code == 400
    assert "labels" in response.json()["fields"]


def test_a_body_over_the_upload_limit_is_413_json(client, make_generic_device, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    _, token = make_generic_device()
    body = {"title": "Smoke", "message": "x" * 2000}

    response = raise_(client, body, token)

    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert not Alarm.objects.exists()


def test_clear_resolves_the_open_alarm(client, make_generic_device):
    _, token = make_generic_device()
    alarm_id = raise_(client, fixture("raise_ups_on_battery.json"), token).json()["alarm_id"]

    response = post(client, "/v1/alarms/clear", fixture("clear_ups_on_battery.json"), token)

    assert response.status_code == 200
    assert response.json() == {"alarm_id": alarm_id, "status": "resolved"}
    alarm = Alarm.objects.get(pk=alarm_id)
    assert alarm.status == "resolved"
    assert alarm.resolved_by == "device Desk phone 1"
    assert alarm.events.last().text.startswith("Mains power restored")


def test_clear_with_an_unknown_dedup_key_is_404_json(client, make_generic_device):
    _, token = make_generic_device()

    response = post(client, "/v1/alarms/clear", fixture("clear_ups_on_battery.json"), token)

    assert response.status_code == 404
    assert "error" in response.json()


def test_a_device_cannot_clear_another_devices_alarm(client, make_generic_device):
    _, token_a = make_generic_device("Gateway A")
    _, token_b = make_generic_device("Gateway B")
    alarm_id = raise_(client, fixture("raise_ups_on_battery.json"), token_a).json()["alarm_id"]

    response = post(client, "/v1/alarms/clear", fixture("clear_ups_on_battery.json"), token_b)

    assert response.status_code == 404
    assert Alarm.objects.get(pk=alarm_id).status == "triggered"


def test_raise_after_clear_and_the_flap_window_opens_a_new_alarm(
    client, make_generic_device, settings
):
    settings.FLAP_WINDOW_SECONDS = 0
    _, token = make_generic_device()
    first = raise_(client, fixture("raise_ups_on_battery.json"), token).json()["alarm_id"]
    post(client, "/v1/alarms/clear", fixture("clear_ups_on_battery.json"), token)

    again = raise_(client, fixture("raise_ups_on_battery.json"), token)

    assert again.status_code == 201
    assert again.json()["alarm_id"] != first
