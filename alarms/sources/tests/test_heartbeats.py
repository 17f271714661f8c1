"""Device heartbeats: a device that goes offline again soon after it came back reaches its
policy's people again (the reopened alarm escalates from its first step), by real email."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms.models import Alarm
from alarms.sources import heartbeats
from core import config_cache
from devices.models import Device
from notifications.tests.steps import drain, run_step

pytestmark = pytest.mark.django_db

INTERVAL = 300


@pytest.fixture
def panic_button(make_device, make_policy, alice):
    policy = make_policy([(0, [alice], [])], name="Technicians")
    return make_device("Panic button 7", heartbeat_interval_seconds=INTERVAL, default_policy=policy)


def goes_offline() -> Alarm:
    """Beat checks once the device has been silent past its interval, and the step runs."""
    assert heartbeats.check(timezone.now() + timedelta(seconds=INTERVAL + 1)) == 1
    alarm = Alarm.objects.get(source="heartbeat")
    if alarm.next_escalation_at is not None:  # a step is due
        run_step(alarm)
    drain(alarm)
    return alarm


def comes_back(client, device: Device, token: str) -> None:
    """It was silent for a while, then sends a heartbeat."""
    Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))
    config_cache.forget()  # as an hour of silence would: a process reads its devices again
    beat = client.post("/v1/devices/heartbeat", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert beat.status_code == 200


def test_a_device_offline_again_soon_after_it_came_back_emails_its_people_again(
    client, panic_button, smtp_server, settings
):
    settings.FLAP_WINDOW_SECONDS = 300
    device, token = panic_button
    first = goes_offline()
    comes_back(client, device, token)
    first.refresh_from_db()
    assert first.status == "resolved"

    again = goes_offline()

    assert [m.rcpt_tos for m in smtp_server.messages] == [["alice@example.org"]] * 2
    assert again.pk == first.pk
    assert (again.status, again.reopen_count) == ("triggered", 1)
    first_mail, second_mail = smtp_server.bodies()
    assert "Device offline: Panic button 7" in first_mail
    assert "FIRED AGAIN after it was resolved" not in first_mail
    assert "FIRED AGAIN after it was resolved" in second_mail
    assert "/a/" in second_mail, "with an ACK link of its own"


def test_a_silent_device_raises_an_offline_alarm_that_clears_when_it_is_heard(
    client, make_device, make_policy, webhook_channel, webhook_receiver
):
    policy = make_policy([(0, [], [webhook_channel])], name="Technicians")
    device, token = make_device("Panic button 7", heartbeat_interval_seconds=300,
                                default_policy=policy)  # fmt: skip
    assert client.get("/v1/devices/heartbeat", {"token": token}).status_code == 200
    assert heartbeats.check() == 0

    later = timezone.now() + timedelta(seconds=301)
    assert heartbeats.check(later) == 1
    assert heartbeats.check(later + timedelta(seconds=30)) == 1  # still one alarm, unchanged
    alarm = Alarm.objects.get(source="heartbeat")
    assert alarm.title == "Device offline: Panic button 7" and alarm.room == device.room
    assert alarm.occurrences == 1 and alarm.events.filter(kind="updated").count() == 0
    run_step(alarm)
    drain(alarm)
    assert webhook_receiver.requests[0]["json"]["alarm"]["title"] == alarm.title

    Device.objects.filter(pk=device.pk).update(last_seen_at=timezone.now() - timedelta(hours=1))
    config_cache.forget()  # as an hour of silence would: it reads its devices again after MAX_AGE
    beat = client.post("/v1/devices/heartbeat", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert beat.status_code == 200
    alarm.refresh_from_db()
    assert alarm.status == "resolved" and alarm.resolved_by == "device Panic button 7"
    assert heartbeats.check() == 0


def test_a_heartbeat_with_an_unknown_token_is_refused(client):
    assert client.get("/v1/devices/heartbeat", {"token": "nope"}).status_code == 404
    assert client.post("/v1/devices/heartbeat").status_code == 401  # no credentials
