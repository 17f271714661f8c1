"""Metric threshold rules through /v1/metrics: for-duration, resolve, cooldown, per series."""

from datetime import UTC, datetime, timedelta

import pytest

from alarms.models import Alarm, MetricRule
from devices.models import Device
from notifications.tests.steps import drain, run_step

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def sender(make_device):
    _, token = make_device("Sensor gateway", kind=Device.Kind.METRICS, room=None)
    return token


@pytest.fixture
def fridge_rule(site):
    return MetricRule.objects.create(
        name="Vaccine fridge warm", metric="fridge_temperature_c", operator=">", threshold=8,
        for_seconds=300, cooldown_seconds=600, severity="critical", site=site,
        matchers='{room=~"Pharmacy.*"}',
    )  # fmt: skip


def send(client, token, value, at, **labels):
    labels = labels or {"room": "Pharmacy", "fridge": "3"}
    body = {"name": "fridge_temperature_c", "value": value, "labels": labels,
            "time": str(at.timestamp())}  # fmt: skip
    response = client.post("/v1/metrics", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert response.status_code == 200, response.content
    return response.json()["changes"]


def test_an_alarm_is_raised_once_the_condition_held_for_its_duration(
    client, sender, fridge_rule, make_policy, webhook_channel, webhook_receiver, site
):
    site.default_policy = make_policy([(0, [], [webhook_channel])], name="Pharmacy")
    site.save()

    assert send(client, sender, 9.1, T0) == []  # holds, not yet for 5 minutes
    assert send(client, sender, 9.4, T0 + timedelta(seconds=200)) == []
    (raised,) = send(client, sender, 9.8, T0 + timedelta(seconds=300))
    assert send(client, sender, 10.2, T0 + timedelta(seconds=360)) == []  # already open

    assert raised["action"] == "raised"
    alarm = Alarm.objects.get(pk=raised["alarm_id"])
    assert (alarm.source, alarm.severity, alarm.site) == ("metric", "critical", site)
    assert alarm.title == "Vaccine fridge warm: fridge_temperature_c is 9.8"
    assert alarm.labels == {"room": "Pharmacy", "fridge": "3", "metric": "fridge_temperature_c"}
    run_step(alarm)
    drain(alarm)
    assert webhook_receiver.requests[0]["json"]["alarm"]["title"] == alarm.title


def test_a_dip_restarts_the_duration_and_recovery_resolves(client, sender, fridge_rule):
    send(client, sender, 9.0, T0)
    send(client, sender, 7.5, T0 + timedelta(seconds=200))  # below: the clock restarts
    assert send(client, sender, 9.0, T0 + timedelta(seconds=400)) == []
    (raised,) = send(client, sender, 9.0, T0 + timedelta(seconds=700))

    (resolved,) = send(client, sender, 6.0, T0 + timedelta(seconds=800))

    assert resolved == {**raised, "action": "resolved"}
    assert Alarm.objects.get(pk=raised["alarm_id"]).status == "resolved"


def test_no_new_alarm_within_the_cooldown(client, sender, fridge_rule, settings):
    settings.FLAP_WINDOW_SECONDS = 0
    send(client, sender, 9.0, T0)
    send(client, sender, 9.0, T0 + timedelta(seconds=300))
    send(client, sender, 6.0, T0 + timedelta(seconds=400))  # resolved

    send(client, sender, 9.0, T0 + timedelta(seconds=500))
    assert send(client, sender, 9.0, T0 + timedelta(seconds=900)) == []  # held, but cooling
    (again,) = send(client, sender, 9.0, T0 + timedelta(seconds=1000))  # 600 s after resolve

    assert again["action"] == "raised"
    assert Alarm.objects.count() == 2


def test_a_rule_firing_again_after_its_cooldown_emails_the_policys_people_again(
    client, sender, fridge_rule, make_policy, alice, smtp_server, site, settings
):
    settings.FLAP_WINDOW_SECONDS = 300
    fridge_rule.for_seconds, fridge_rule.cooldown_seconds = 0, 60  # cooler than the window
    fridge_rule.save()
    site.default_policy = make_policy([(0, [alice], [])], name="Pharmacy")
    site.save()
    (raised,) = send(client, sender, 9.0, T0)
    alarm = Alarm.objects.get(pk=raised["alarm_id"])
    run_step(alarm)
    drain(alarm)
    send(client, sender, 6.0, T0 + timedelta(seconds=100))  # resolved
    assert send(client, sender, 9.0, T0 + timedelta(seconds=130)) == []  # cooling down

    (again,) = send(client, sender, 9.0, T0 + timedelta(seconds=160))  # 60 s after the resolve

    assert (again["action"], again["alarm_id"]) == ("raised", str(alarm.pk))
    alarm.refresh_from_db()
    if alarm.next_escalation_at is not None:  # a step is due
        run_step(alarm)
    drain(alarm)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["alice@example.org"]] * 2
    assert (alarm.status, alarm.reopen_count) == ("triggered", 1)
    second_mail = smtp_server.bodies()[1]
    assert "FIRED AGAIN after it was resolved" in second_mail
    assert "Vaccine fridge warm: fridge_temperature_c is 9" in second_mail


def test_series_are_watched_apart_and_late_samples_ignored(client, sender, fridge_rule):
    fridge_rule.for_seconds = 0
    fridge_rule.save()

    (three,) = send(client, sender, 9.0, T0, room="Pharmacy", fridge="3")
    (four,) = send(client, sender, 9.0, T0, room="Pharmacy", fridge="4")
    assert send(client, sender, 9.0, T0, room="Kitchen", fridge="1") == []  # no match
    assert send(client, sender, 1.0, T0 - timedelta(seconds=60), room="Pharmacy", fridge="3") == []

    assert three["alarm_id"] != four["alarm_id"]
    assert Alarm.objects.filter(status="triggered").count() == 2


@pytest.mark.parametrize(
    ("operator", "value", "holds"),
    [(">", 8.1, True), (">", 8, False), ("<", 7.9, True), (">=", 8, True), ("<=", 8.1, False),
     ("==", 8, True), ("!=", 8, False), ("!=", 8.5, True)],
)  # fmt: skip
def test_operators(operator, value, holds):
    assert MetricRule(operator=operator, threshold=8).holds(value) is holds


def test_a_batch_is_checked_sample_by_sample(client, sender, fridge_rule):
    fridge_rule.for_seconds = 0
    fridge_rule.save()
    metrics = [
        {"name": "fridge_temperature_c", "value": v, "labels": {"room": "Pharmacy", "fridge": f},
         "time": (T0 + timedelta(seconds=i)).isoformat()}
        for i, (f, v) in enumerate([("1", 9.0), ("2", 4.0), ("1", 5.0), ("3", 12.0)])
    ]  # fmt: skip

    response = client.post(
        "/v1/metrics/batch", {"metrics": metrics}, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {sender}",
    )  # fmt: skip

    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 4
    assert [(c["labels"]["fridge"], c["action"]) for c in body["changes"]] == [
        ("1", "raised"), ("1", "resolved"), ("3", "raised")]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad name!", "value": 1},
        {"name": "t", "value": "warm"},
        {"name": "t", "value": 1, "time": "yesterday"},
        {"name": "t", "value": 1, "labels": {"a": 1}},
        {"metrics": []},
    ],
)
def test_bad_samples_are_refused_clearly(client, sender, body):
    path = "/v1/metrics/batch" if "metrics" in body else "/v1/metrics"
    response = client.post(path, body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {sender}")  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"] == "invalid input"


def test_only_a_metrics_token_may_send(client, make_device):
    _, token = make_device()
    response = client.post(
        "/v1/metrics", {"name": "t", "value": 1}, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip
    assert response.status_code == 403
