"""The Yealink Action URL: a desk phone's emergency key as a plain GET with the device token."""

import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alarms import lifecycle
from alarms.models import Alarm
from alarms.timeline import SYSTEM
from conftest import free_port

pytestmark = pytest.mark.django_db

URL = "/v1/yealink/alarm"


@pytest.fixture
def dead_redis(settings):
    """Point the rate limiter at a port where no Redis listens."""
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"


def press(client, token):
    return client.get(URL, {"token": token})


def test_the_first_press_of_a_phone_reads_only_its_row_once_its_room_and_site_are_known(
    client, make_device
):
    _, first = make_device("Phone 1")
    _, second = make_device("Phone 2")  # the same room
    assert press(client, first).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert press(client, second).status_code == 200

    reads = [q["sql"] for q in queries if re.search(r'FROM "devices_', q["sql"])]
    assert len(reads) == 1 and "JOIN" not in reads[0]


def test_a_press_opens_an_alarm_for_the_device(client, make_device, room):
    device, token = make_device()

    response = press(client, token)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "triggered"
    assert body["created"] is True
    assert body["occurrences"] == 1
    alarm = Alarm.objects.get(pk=body["alarm_id"])
    assert (alarm.source, alarm.device, alarm.room, alarm.site) == (
        "yealink",
        device,
        room,
        room.site,
    )
    assert alarm.severity == "critical"
    assert list(alarm.events.values_list("kind", flat=True)) == ["triggered", "routed"]


def test_a_press_names_the_person_the_phone_stands_for(client, make_device, make_person):
    carol = make_person("Carol")
    _, token = make_device(person=carol)

    alarm = Alarm.objects.get(pk=press(client, token).json()["alarm_id"])

    assert alarm.person == carol
    assert "Carol" in alarm.title


def test_an_unknown_token_is_404_json(client, make_device):
    make_device()

    response = press(client, "not-a-token")

    assert response.status_code == 404
    assert "error" in response.json()
    assert not Alarm.objects.exists()


def test_a_missing_token_is_404_json(client, make_device):
    make_device()

    response = client.get(URL)

    assert response.status_code == 404
    assert "error" in response.json()
    assert not Alarm.objects.exists()


def test_a_disabled_device_is_404(client, make_device):
    _, token = make_device(enabled=False)

    response = press(client, token)

    assert response.status_code == 404
    assert "error" in response.json()
    assert not Alarm.objects.exists()


def test_a_device_mapped_to_neither_room_nor_person_is_409(client, make_device):
    _, token = make_device(room=None, person=None)

    response = press(client, token)

    assert response.status_code == 409
    assert "not mapped" in response.json()["error"]
    assert not Alarm.objects.exists()


def test_presses_over_the_devices_rate_limit_are_answered_429_with_retry_after(client, make_device):
    # The limit counts per clock minute: if the minute turns mid-test, start again.
    for attempt in range(3):
        device, token = make_device(name=f"Limited phone {attempt}", rate_limit_per_minute=2)
        minute = int(time.time() // 60)
        answers = [press(client, token) for _ in range(3)]
        if int(time.time() // 60) == minute:
            break

    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[2]["Retry-After"] == "60"
    assert "rate limit" in answers[2].json()["error"]
    assert Alarm.objects.get(device=device).occurrences == 2


def test_a_press_is_accepted_when_redis_is_down(client, make_device, dead_redis):
    _, token = make_device(rate_limit_per_minute=1)

    answers = [press(client, token) for _ in range(2)]

    assert [r.status_code for r in answers] == [200, 200]
    assert Alarm.objects.get().occurrences == 2


def test_a_repeat_press_adds_an_occurrence_to_the_open_alarm(client, make_device):
    _, token = make_device()

    first = press(client, token).json()
    second = press(client, token)

    assert second.status_code == 200
    assert second.json()["alarm_id"] == first["alarm_id"]
    assert second.json()["created"] is False
    assert second.json()["occurrences"] == 2
    alarm = Alarm.objects.get()
    assert alarm.occurrences == 2
    assert list(alarm.events.values_list("kind", flat=True)) == ["triggered", "routed", "repeated"]


def test_a_press_after_the_alarm_was_resolved_opens_a_new_alarm(client, make_device, settings):
    settings.FLAP_WINDOW_SECONDS = 0
    _, token = make_device()
    first = press(client, token).json()["alarm_id"]
    lifecycle.resolve(first, SYSTEM)

    second = press(client, token).json()

    assert second["alarm_id"] != first
    assert second["created"] is True
    assert second["occurrences"] == 1
    assert Alarm.objects.get(pk=first).status == "resolved"
    assert Alarm.objects.get(pk=second["alarm_id"]).status == "triggered"


def test_a_press_records_when_the_device_was_last_seen(client, make_device):
    device, token = make_device()
    assert device.last_seen_at is None

    press(client, token)

    device.refresh_from_db()
    assert device.last_seen_at is not None


def test_a_press_records_where_it_came_from(client, make_device):
    _, token = make_device()

    client.get(URL, {"token": token}, REMOTE_ADDR="10.1.2.3")

    event = Alarm.objects.get().events.get(kind="triggered")
    assert event.source_ip == "10.1.2.3"
    assert event.actor == "device Desk phone 1"
