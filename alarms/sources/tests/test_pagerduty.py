"""PagerDuty's Events API v2 (fixtures/pagerduty/), through the HTTP API to the notification
that results, and its errors in PagerDuty's own shape."""

import pytest

from alarms.models import Alarm
from devices.models import Device
from notifications.tests.steps import drain, run_step

from .payloads import integration, pagerduty_event

pytestmark = pytest.mark.django_db


def post_pagerduty(client, event, path="/v2/enqueue"):
    return client.post(path, event, content_type="application/json")


def test_pagerduty_events_trigger_acknowledge_and_resolve(
    client, make_device, make_policy, webhook_channel, webhook_receiver
):
    policy = make_policy([(0, [], [webhook_channel])], name="Storage")
    _, key = integration(make_device, Device.Kind.PAGERDUTY, default_policy=policy)

    triggered = post_pagerduty(client, pagerduty_event(key))

    assert triggered.status_code == 202
    answer = {"status": "success", "message": "Event processed", "dedup_key": "db-primary/disk"}
    assert triggered.json() == answer
    alarm = Alarm.objects.get()
    assert (alarm.source, alarm.title, alarm.severity) == (
        "pagerduty", "Disk on db-primary is 97% full", "high")  # fmt: skip
    assert alarm.labels == {"origin": "db-primary.example.org", "component": "postgres",
                            "group": "storage", "class": "disk"}  # fmt: skip
    assert alarm.details["custom_details"] == {"free_gb": 3, "mount": "/var/lib/postgresql"}
    run_step(alarm)
    drain(alarm)
    assert webhook_receiver.requests[0]["json"]["alarm"]["title"] == alarm.title

    assert post_pagerduty(client, pagerduty_event(key)).status_code == 202  # resend: no-op
    ack = post_pagerduty(client, pagerduty_event(key, "acknowledge"), "/v1/integrations/pagerduty")
    assert ack.status_code == 202
    alarm.refresh_from_db()
    assert alarm.status == "acknowledged" and alarm.occurrences == 1
    resolved = post_pagerduty(client, pagerduty_event(key, "resolve"))
    assert resolved.status_code == 202
    alarm.refresh_from_db()
    assert alarm.status == "resolved"
    drain(alarm)
    assert [r["json"]["event"] for r in webhook_receiver.requests] == [
        "alarm.triggered", "alarm.acknowledged", "alarm.resolved"]  # fmt: skip


def test_pagerduty_trigger_after_resolve_pages_again_and_resolves_again(
    client, make_device, make_policy, webhook_channel, webhook_receiver
):
    policy = make_policy([(0, [], [webhook_channel])], name="Storage")
    _, key = integration(make_device, Device.Kind.PAGERDUTY, default_policy=policy)
    post_pagerduty(client, pagerduty_event(key))
    alarm = Alarm.objects.get()
    run_step(alarm)
    drain(alarm)
    post_pagerduty(client, pagerduty_event(key, "resolve"))
    drain(alarm)

    again = post_pagerduty(client, pagerduty_event(key))

    assert again.status_code == 202
    alarm.refresh_from_db()
    assert (alarm.status, alarm.reopen_count) == ("triggered", 1)
    run_step(alarm)
    drain(alarm)
    post_pagerduty(client, pagerduty_event(key, "resolve"))
    drain(alarm)
    events = [r["json"]["event"] for r in webhook_receiver.requests]
    assert events == ["alarm.triggered", "alarm.resolved", "alarm.triggered", "alarm.resolved"]
    ids = [r["json"]["event_id"] for r in webhook_receiver.requests]
    assert len(set(ids)) == 4  # the second cycle's events are new ones to the receiver


def test_pagerduty_trigger_without_a_dedup_key_gets_one(client, make_device):
    _, key = integration(make_device, Device.Kind.PAGERDUTY)
    event = pagerduty_event(key)
    del event["dedup_key"]

    answer = post_pagerduty(client, event).json()

    assert len(answer["dedup_key"]) == 32
    assert Alarm.objects.get().dedup_key.endswith(answer["dedup_key"])


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (
            {
                "event_action": "trigger",
                "payload": {"summary": "x", "source": "y", "severity": "critical"},
            },
            "routing_key",
        ),  # fmt: skip
        ({"routing_key": "KEY", "event_action": "explode"}, "event_action"),
        ({"routing_key": "KEY", "event_action": "trigger"}, "'payload' is required"),
        ({"routing_key": "KEY", "event_action": "resolve"}, "'dedup_key' is required"),
        (
            {
                "routing_key": "KEY",
                "event_action": "trigger",
                "payload": {"summary": "x", "source": "y", "severity": "fatal"},
            },
            "severity",
        ),  # fmt: skip
        (
            {"routing_key": "wrong", "event_action": "resolve", "dedup_key": "k"},
            "Invalid routing key",
        ),
    ],
)
def test_pagerduty_invalid_events_answer_as_pagerduty_does(client, make_device, event, error):
    _, key = integration(make_device, Device.Kind.PAGERDUTY)
    if event.get("routing_key") == "KEY":
        event["routing_key"] = key

    response = post_pagerduty(client, event)

    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any(error in line for line in body["errors"]), body
    assert not Alarm.objects.exists()


def test_a_dedup_key_of_the_longest_length_pagerduty_takes_is_one_alarm(client, make_device):
    _, key = integration(make_device, Device.Kind.PAGERDUTY)
    long_key = "k" * 255

    for _ in range(2):
        assert post_pagerduty(client, pagerduty_event(key, dedup_key=long_key)).status_code == 202
    assert post_pagerduty(client, pagerduty_event(key, "resolve", long_key)).status_code == 202

    alarm = Alarm.objects.get()
    assert (alarm.occurrences, alarm.status) == (1, "resolved")  # a resend is a no-op
