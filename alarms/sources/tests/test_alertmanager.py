"""Prometheus Alertmanager's webhook (version 4, as fixtures/alertmanager/ holds it), through
the HTTP API to the notification that results."""

import pytest

from alarms.models import Alarm
from devices.models import Device
from escalation.models import RoutingRule
from notifications.tests.steps import drain, run_step

from .payloads import integration, payload

pytestmark = pytest.mark.django_db


def firing() -> dict:
    """Two vaccine fridges too warm, one alert each, as Alertmanager posts them."""
    return payload("alertmanager", "two_fridges_firing")


@pytest.fixture
def pharmacy(make_policy, make_person, webhook_channel):
    """A policy that posts to a real local webhook receiver, and a rule sending pharmacy alerts
    to it."""
    policy = make_policy([(0, [], [webhook_channel])], name="Pharmacy")
    RoutingRule.objects.create(name="Pharmacy", matchers='team="pharmacy"', policy=policy)
    return policy


def post_alertmanager(client, token, payload):
    return client.post(
        "/v1/integrations/alertmanager", payload, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip


def test_alertmanager_firing_alerts_become_alarms_that_notify(
    client, make_device, pharmacy, webhook_receiver
):
    _, token = integration(make_device, Device.Kind.ALERTMANAGER)

    response = post_alertmanager(client, token, firing())

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
    payload = firing()
    payload["alerts"][0]["labels"]["site"] = site.name
    payload["alerts"][1]["labels"]["site"] = "Nowhere"

    results = post_alertmanager(client, token, payload).json()["alerts"]

    assert Alarm.objects.get(pk=results[0]["alarm_id"]).site == site
    assert Alarm.objects.get(pk=results[1]["alarm_id"]).site is None


def test_alertmanager_resends_change_nothing_until_something_changed(client, make_device, pharmacy):
    _, token = integration(make_device, Device.Kind.ALERTMANAGER)
    post_alertmanager(client, token, firing())
    alarm = Alarm.objects.get(labels__instance="fridge-3:9100")
    events = alarm.events.count()

    again = post_alertmanager(client, token, firing())  # repeat_interval, HA twin
    assert [r["action"] for r in again.json()["alerts"]] == ["unchanged", "unchanged"]
    assert alarm.events.count() == events
    changed = firing()
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
    post_alertmanager(client, token, firing())
    alarm = Alarm.objects.get(labels__instance="fridge-3:9100")
    run_step(alarm)
    drain(alarm)
    resolved = firing()
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
    flapped = post_alertmanager(client, token, firing())  # fires again at once
    assert [r["action"] for r in flapped.json()["alerts"]] == ["reopened", "unchanged"]
    assert flapped.json()["alerts"][0]["alarm_id"] == str(alarm.pk)
    run_step(alarm)  # a reopened alarm escalates again from its first step
    drain(alarm)
    assert [r["json"]["event"] for r in webhook_receiver.requests][2:] == ["alarm.triggered"]
    assert webhook_receiver.requests[2]["json"]["alarm"]["reopen_count"] == 1
    resent = post_alertmanager(client, token, firing())  # its next resend: a no-op
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
    response = post_alertmanager(client, token, {**firing(), **change})
    assert response.status_code == status
    assert text in str(response.json())
    assert not Alarm.objects.exists()


def test_integration_tokens_only_open_their_own_door(client, make_device):
    _, yealink_token = make_device()
    _, am_token = integration(make_device, Device.Kind.ALERTMANAGER)

    assert post_alertmanager(client, yealink_token, firing()).status_code == 403
    assert post_alertmanager(client, "not-a-token", firing()).status_code == 401
    press = client.get("/v1/yealink/alarm", {"token": am_token})
    assert press.status_code == 403 and "Alertmanager" in press.json()["error"]
    raised = client.post("/v1/alarms/raise", {"title": "x"}, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {am_token}")  # fmt: skip
    assert raised.status_code == 403
    assert not Alarm.objects.exists()
