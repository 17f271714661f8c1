"""Alarms from the tools people run: Prometheus Alertmanager's webhook (version 4 payloads),
PagerDuty Events API v2, and device heartbeats; each through the HTTP API to the notification
that results."""

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from alarms.models import Alarm
from alarms.sources import heartbeats
from core import config_cache
from devices.models import Device
from escalation.models import RoutingRule
from notifications.tests.steps import drain, run_step

pytestmark = pytest.mark.django_db

# What Alertmanager posts to a webhook receiver (its documented version 4 shape).
ALERTMANAGER_FIRING = {
    "version": "4",
    "groupKey": '{}:{alertname="VaccineFridgeWarm"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "alarm-broker",
    "groupLabels": {"alertname": "VaccineFridgeWarm"},
    "commonLabels": {"alertname": "VaccineFridgeWarm", "job": "sensors", "severity": "critical"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example.org:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "VaccineFridgeWarm", "instance": "fridge-3:9100",
                       "job": "sensors", "severity": "critical", "team": "pharmacy"},
            "annotations": {"summary": "Vaccine fridge 3 is at 11.5 °C",
                            "description": "Above 8 °C for 10 minutes."},
            "startsAt": "2026-11-23T10:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=fridge_temp",
            "fingerprint": "8d3c6a1f02b4e975",
        },
        {
            "status": "firing",
            "labels": {"alertname": "VaccineFridgeWarm", "instance": "fridge-4:9100",
                       "job": "sensors", "severity": "warning"},
            "annotations": {"summary": "Vaccine fridge 4 is at 8.4 °C"},
            "startsAt": "2026-11-23T10:01:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=fridge_temp",
            "fingerprint": "1f2e3d4c5b6a7988",
        },
    ],
}  # fmt: skip


@pytest.fixture
def pharmacy(make_policy, make_person, webhook_channel):
    """A policy that posts to a real local webhook receiver, and a rule sending pharmacy alerts
    to it."""
    policy = make_policy([(0, [], [webhook_channel])], name="Pharmacy")
    RoutingRule.objects.create(name="Pharmacy", matchers='team="pharmacy"', policy=policy)
    return policy


def integration(make_device, kind, **fields):
    return make_device(f"{kind} integration", kind=kind, room=None, **fields)


def post_alertmanager(client, token, payload):
    return client.post(
        "/v1/integrations/alertmanager", payload, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip


def test_alertmanager_firing_alerts_become_alarms_that_notify(
    client, make_device, pharmacy, webhook_receiver
):
    _, token = integration(make_device, Device.Kind.ALERTMANAGER)

    response = post_alertmanager(client, token, ALERTMANAGER_FIRING)

    assert response.status_code == 200
    results = response.json()["alerts"]
    assert [(r["fingerprint"], r["action"]) for r in results] == [
        ("8d3c6a1f02b4e975", "raised"), ("1f2e3d4c5b6a7988", "raised")]  # fmt: skip
    fridge3 = Alarm.objects.get(pk=results[0]["alarm_id"])
    assert (fridge3.source, fridge3.title, fridge3.severity) == (
        "alertmanager", "Vaccine fridge 3 is at 11.5 °C", "critical")  # fmt: skip
    assert fridge3.message == "Above 8 °C for 10 minutes."
    assert fridge3.labels["instance"] == "fridge-3:9100"
    assert fridge3.details["annotations"]["description"] == "Above 8 °C for 10 minutes."
    assert fridge3.details["generatorURL"].startswith("http://prometheus.example.org")
    assert fridge3.policy == pharmacy
    assert fridge3.site is None
    fridge4 = Alarm.objects.get(pk=results[1]["alarm_id"])
    assert fridge4.severity == "warning" and fridge4.policy is None  # no team label, no default

    run_step(fridge3)
    drain(fridge3)
    (posted,) = webhook_receiver.requests
    assert posted["json"]["event"] == "alarm.triggered"
    assert posted["json"]["alarm"]["title"] == "Vaccine fridge 3 is at 11.5 °C"


def test_an_alerts_site_label_names_its_site(client, make_device, site):
    _, token = integration(make_device, Device.Kind.ALERTMANAGER)
    payload = copy.deepcopy(ALERTMANAGER_FIRING)
    payload["alerts"][0]["labels"]["site"] = site.name
    payload["alerts"][1]["labels"]["site"] = "Nowhere"

    results = post_alertmanager(client, token, payload).json()["alerts"]

    assert Alarm.objects.get(pk=results[0]["alarm_id"]).site == site
    assert Alarm.objects.get(pk=results[1]["alarm_id"]).site is None


def test_alertmanager_resends_change_nothing_until_something_changed(client, make_device, pharmacy):
    _, token = integration(make_device, Device.Kind.ALERTMANAGER)
    post_alertmanager(client, token, ALERTMANAGER_FIRING)
    alarm = Alarm.objects.get(labels__instance="fridge-3:9100")
    events = alarm.events.count()

    again = post_alertmanager(client, token, ALERTMANAGER_FIRING)  # repeat_interval, HA twin
    assert [r["action"] for r in again.json()["alerts"]] == ["unchanged", "unchanged"]
    assert alarm.events.count() == events
    changed = copy.deepcopy(ALERTMANAGER_FIRING)
    changed["alerts"][0]["annotations"]["summary"] = "Vaccine fridge 3 is at 12.9 °C"
    updated = post_alertmanager(client, token, changed)

    assert [r["action"] for r in updated.json()["alerts"]] == ["updated", "unchanged"]
    alarm.refresh_from_db()
    assert alarm.title == "Vaccine fridge 3 is at 12.9 °C" and alarm.occurrences == 1
    assert alarm.events.latest("id").kind == "updated"
    assert Alarm.objects.count() == 2


def test_alertmanager_resolved_resolves_and_tells_the_channel(
    client, make_device, pharmacy, webhook_receiver
):
    _, token = integration(make_device, Device.Kind.ALERTMANAGER)
    post_alertmanager(client, token, ALERTMANAGER_FIRING)
    alarm = Alarm.objects.get(labels__instance="fridge-3:9100")
    run_step(alarm)
    drain(alarm)
    resolved = copy.deepcopy(ALERTMANAGER_FIRING)
    resolved["status"] = "resolved"
    resolved["alerts"] = resolved["alerts"][:1]
    resolved["alerts"][0].update(status="resolved", endsAt="2026-11-23T10:30:00.000Z")

    response = post_alertmanager(client, token, resolved)

    assert response.json()["alerts"][0]["action"] == "resolved"
    alarm.refresh_from_db()
    assert alarm.status == "resolved" and alarm.resolved_by.startswith("Prometheus Alertmanager")
    drain(alarm)
    assert [r["json"]["event"] for r in webhook_receiver.requests] == [
        "alarm.triggered", "alarm.resolved"]  # fmt: skip
    again = post_alertmanager(client, token, resolved)
    assert again.json()["alerts"][0]["action"] == "not open"
    flapped = post_alertmanager(client, token, ALERTMANAGER_FIRING)  # fires again at once
    assert [r["action"] for r in flapped.json()["alerts"]] == ["reopened", "unchanged"]
    assert flapped.json()["alerts"][0]["alarm_id"] == str(alarm.pk)
    run_step(alarm)  # a reopened alarm escalates again from its first step
    drain(alarm)
    assert [r["json"]["event"] for r in webhook_receiver.requests][2:] == ["alarm.triggered"]
    assert webhook_receiver.requests[2]["json"]["alarm"]["reopen_count"] == 1
    resent = post_alertmanager(client, token, ALERTMANAGER_FIRING)  # its next resend: a no-op
    assert [r["action"] for r in resent.json()["alerts"]] == ["unchanged", "unchanged"]


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"version": "3"}, 400, 'version "4"'),
        ({"alerts": [{"status": "firing"}]}, 400, "labels"),
        ({"alerts": [{"status": "burning", "labels": {}}]}, 400, "status"),
        ({"alerts": "nope"}, 400, "alerts"),
    ],
)
def test_alertmanager_bad_payloads_are_refused_clearly(client, make_device, change, status, text):
    _, token = integration(make_device, Device.Kind.ALERTMANAGER)
    response = post_alertmanager(client, token, {**ALERTMANAGER_FIRING, **change})
    assert response.status_code == status
    assert text in str(response.json())
    assert not Alarm.objects.exists()


def test_integration_tokens_only_open_their_own_door(client, make_device):
    _, yealink_token = make_device()
    _, am_token = integration(make_device, Device.Kind.ALERTMANAGER)

    assert post_alertmanager(client, yealink_token, ALERTMANAGER_FIRING).status_code == 403
    assert post_alertmanager(client, "not-a-token", ALERTMANAGER_FIRING).status_code == 401
    press = client.get("/v1/yealink/alarm", {"token": am_token})
    assert press.status_code == 403 and "Alertmanager" in press.json()["error"]
    raised = client.post("/v1/alarms/raise", {"title": "x"}, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {am_token}")  # fmt: skip
    assert raised.status_code == 403
    assert not Alarm.objects.exists()


# What a PagerDuty Events API v2 client sends.
def pagerduty_event(routing_key, action="trigger", dedup_key="db-primary/disk", **payload):
    event = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key}
    if action == "trigger":
        event["payload"] = {
            "summary": "Disk on db-primary is 97% full", "source": "db-primary.example.org",
            "severity": "error", "component": "postgres", "group": "storage", "class": "disk",
            "custom_details": {"free_gb": 3, "mount": "/var/lib/postgresql"}, **payload,
        }  # fmt: skip
        event["links"] = [{"href": "https://grafana.example.org/d/disk", "text": "Dashboard"}]
        event["client"], event["client_url"] = "Grafana", "https://grafana.example.org"
    return event


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
