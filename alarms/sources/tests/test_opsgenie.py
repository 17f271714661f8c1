"""Opsgenie's Alert API and heartbeat pings on Opsgenie's own paths (fixtures/opsgenie/: the
requests of its API documentation), answered as Opsgenie answers; and a real Alertmanager whose
`opsgenie_configs` were moved to us by their base URL and key alone."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from alarms.models import Alarm, AlarmEvent
from alarms.sources import heartbeats
from alarms.tests.alertmanager_process import post_alert, running
from conftest import wait_until
from devices.models import Device
from oncall.models import Team

from .payloads import integration, payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def genie_key(make_device):
    _, key = integration(make_device, Device.Kind.OPSGENIE)
    return key


def send(client, path, body=None, key=None, method="post"):
    headers = {"HTTP_AUTHORIZATION": f"GenieKey {key}"} if key else {}
    if method != "post":
        return getattr(client, method)(path, **headers)
    data = body if isinstance(body, str) else json.dumps(body or {})
    return client.post(path, data, content_type="application/json", **headers)


def assert_opsgenie_answer(body: dict) -> None:
    assert isinstance(body["took"], float) and body["took"] >= 0
    uuid.UUID(body["requestId"])


def test_the_documented_create_request_opens_an_alarm_and_is_answered_202(client, genie_key):
    answer = send(client, "/v2/alerts", payload("opsgenie", "create_alert"), genie_key)

    assert answer.status_code == 202
    assert answer.json()["result"] == "Request will be processed"
    assert_opsgenie_answer(answer.json())
    alarm = Alarm.objects.get()
    assert (alarm.source, alarm.title, alarm.severity) == (
        "opsgenie", "An example alert message", "critical")  # fmt: skip
    assert alarm.message == "Every alert needs a description"
    assert alarm.labels == {
        "priority": "P1", "tags": "OverwriteQuietHours,Critical", "entity": "An example entity",
        "team": "4513b7ea-3b91-438f-b7e4-e3e54af9147c,NOC",
        "user": "bb4d9938-c3c2-455d-aaab-727aa701c0d8,trinity@opsgenie.com",
        "escalation": "aee8a0de-c80f-4515-a232-501c0bc9d715,Nightwatch Escalation",
        "schedule": "80564037-1984-4f38-b98e-8a1f662df552,First Responders Schedule",
    }  # fmt: skip
    assert alarm.details["details"] == {"key1": "value1", "key2": "value2"}
    assert alarm.details["actions"] == ["Restart", "AnExampleAction"]
    assert alarm.dedup_key.endswith(":opsgenie:Life is too short for no alias")


def test_a_repeat_of_an_open_alias_counts_an_occurrence_and_a_close_by_alias_resolves(
    client, genie_key
):
    alert = payload("opsgenie", "create_alert")
    send(client, "/v2/alerts", alert, genie_key)
    assert send(client, "/v2/alerts", alert, genie_key).status_code == 202

    alarm = Alarm.objects.get()
    assert alarm.occurrences == 2
    path = "/v2/alerts/Life%20is%20too%20short%20for%20no%20alias/close?identifierType=alias"
    closed = send(client, path, payload("opsgenie", "close_alert"), genie_key)

    assert closed.status_code == 202 and closed.json()["result"] == "Request will be processed"
    alarm.refresh_from_db()
    assert alarm.status == "resolved"
    assert (
        alarm.resolved_by
        == "Opsgenie Alert API sender opsgenie integration (user Monitoring Script)"
    )
    assert alarm.events.filter(kind=AlarmEvent.Kind.RESOLVED).get().text == (
        "Action executed via Alert API")  # fmt: skip


def test_a_create_after_the_close_reaches_a_human_again(client, genie_key):
    alert = payload("opsgenie", "create_alert")
    send(client, "/v2/alerts", alert, genie_key)
    send(client, "/v2/alerts/Life is too short for no alias/close?identifierType=alias", {},
         genie_key)  # fmt: skip

    send(client, "/v2/alerts", alert, genie_key)

    alarm = Alarm.objects.get()
    assert alarm.status == "triggered" and alarm.reopen_count == 1


def test_an_alert_is_acknowledged_by_the_id_its_request_status_gives(client, genie_key):
    created = send(client, "/v2/alerts", {"message": "Queue backlog", "alias": "q/1"}, genie_key)
    status = send(client, f"/v2/alerts/requests/{created.json()['requestId']}", key=genie_key,
                  method="get")  # fmt: skip

    assert status.status_code == 200
    data = status.json()["data"]
    alarm = Alarm.objects.get()
    assert data["alertId"] == str(alarm.pk) and data["alias"] == "q/1"
    assert (data["action"], data["status"], data["isSuccess"]) == ("Create", "Created alert", True)
    assert alarm.severity == "warning"  # P3, Opsgenie's default priority
    acked = send(client, f"/v2/alerts/{alarm.pk}/acknowledge", payload("opsgenie",
                 "acknowledge_alert"), genie_key)  # fmt: skip
    assert acked.status_code == 202
    alarm.refresh_from_db()
    assert alarm.status == "acknowledged"
    # An alias with a slash, sent encoded, closes it.
    send(client, "/v2/alerts/q%2F1/close?identifierType=alias", {}, genie_key)
    alarm.refresh_from_db()
    assert alarm.status == "resolved"
    again = send(client, f"/v2/alerts/{alarm.pk}/acknowledge", {}, genie_key)
    later = send(client, f"/v2/alerts/requests/{again.json()['requestId']}", key=genie_key,
                 method="get").json()["data"]  # fmt: skip
    assert (again.status_code, later["status"], later["isSuccess"]) == (
        202, "Alert is already closed", False)  # fmt: skip


def test_closing_what_is_not_open_is_accepted_as_opsgenie_accepts_it(client, genie_key):
    answer = send(client, "/v2/alerts/nothing-here/close?identifierType=alias", {}, genie_key)
    later = send(client, f"/v2/alerts/requests/{answer.json()['requestId']}", key=genie_key,
                 method="get").json()["data"]  # fmt: skip

    assert answer.status_code == 202
    assert (later["status"], later["success"], later["alertId"]) == (
        "Alert does not exist", False, "")  # fmt: skip


def test_a_long_alias_is_one_alarm_and_closes_by_that_alias(client, genie_key):
    alias = "backup/" + "x" * 500  # Opsgenie takes up to 512 characters

    for _ in range(2):
        assert send(client, "/v2/alerts", {"message": "Backup failed", "alias": alias},
                    genie_key).status_code == 202  # fmt: skip
    send(client, f"/v2/alerts/{alias.replace('/', '%2F')}/close?identifierType=alias", {},
         genie_key)  # fmt: skip

    alarm = Alarm.objects.get()
    assert (alarm.occurrences, alarm.status) == (2, "resolved")


def test_a_request_status_is_only_its_own_integrations(client, genie_key, make_device):
    _, other = make_device("another sender", kind=Device.Kind.OPSGENIE, room=None)
    created = send(client, "/v2/alerts", {"message": "Queue backlog"}, genie_key).json()

    path = f"/v2/alerts/requests/{created['requestId']}"
    answer = send(client, path, key=other, method="get")

    assert answer.status_code == 404
    own = send(client, path, key=genie_key, method="get").json()["data"]
    assert own["integrationId"] == str(Device.objects.get(name="opsgenie integration").pk)


def test_a_named_team_escalates_by_our_team_of_that_name(client, genie_key, make_policy):
    noc = Team.objects.create(name="NOC")
    policy = make_policy([(0, [], [])], name="NOC policy", team=noc)

    send(client, "/v2/alerts", payload("opsgenie", "create_alert"), genie_key)

    alarm = Alarm.objects.get()
    assert alarm.policy == policy
    assert "named by its opsgenie" in alarm.events.get(kind=AlarmEvent.Kind.ROUTED).text


def test_refusals_come_in_opsgenies_error_shape_and_cost_nothing_accepted(
    client, genie_key, make_generic_device
):
    send(client, "/v2/alerts", {"message": "Accepted first", "alias": "a"}, genie_key)
    _, panic_button = make_generic_device("Panic button")

    cases = [
        (send(client, "/v2/alerts", {"message": "x"}), 401, "Could not authenticate"),
        (send(client, "/v2/alerts", {"message": "x"}, "not-a-key"), 401, "Could not authenticate"),
        (send(client, "/v2/alerts", {"message": "x"}, panic_button), 403,
         "This key is not an Opsgenie integration's key."),
        (send(client, "/v2/alerts", {"alias": "a"}, genie_key), 422,
         "Request body is not processable. Please check the errors."),
        (send(client, "/v2/alerts", "{nope", genie_key), 422,
         "Request body is not processable. Please check the errors."),
        (send(client, "/v2/alerts/a/close?identifierType=tiny", {}, genie_key), 422,
         "Request body is not processable. Please check the errors."),
    ]  # fmt: skip

    for answer, status, message in cases:
        assert (answer.status_code, answer.json()["message"]) == (status, message)
        assert_opsgenie_answer(answer.json())
    assert cases[0][0]["WWW-Authenticate"] == "GenieKey"
    assert cases[3][0].json()["errors"] == {"message": "This field is required."}
    invalid = send(client, "/v2/alerts", {"message": "x", "priority": "P9",
                   "responders": [{"type": "team"}]}, genie_key).json()  # fmt: skip
    assert set(invalid["errors"]) == {"priority", "responders[0]"}
    alarm = Alarm.objects.get()
    assert (alarm.title, alarm.status, alarm.occurrences) == ("Accepted first", "triggered", 1)


def test_an_integration_over_its_rate_limit_is_answered_429(client, make_device):
    _, key = integration(make_device, Device.Kind.OPSGENIE, rate_limit_per_minute=1)
    send(client, "/v2/alerts", {"message": "first"}, key)

    answer = send(client, "/v2/alerts", {"message": "second"}, key)

    assert answer.status_code == 429 and answer["Retry-After"] == "60"
    assert answer.json()["message"].startswith("You are making too many requests!")
    assert Alarm.objects.get().title == "first"


def test_a_heartbeat_ping_keeps_its_device_alive_and_ends_its_offline_alarm(
    client, genie_key, make_device
):
    beat, _ = make_device("nightly-backup", kind=Device.Kind.OPSGENIE, room=None,
                          heartbeat_interval_seconds=60)  # fmt: skip
    Device.objects.filter(pk=beat.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    assert heartbeats.check() == 1
    offline = Alarm.objects.get(source="heartbeat")

    for method in ("get", "post", "head"):
        answer = send(client, "/v2/heartbeats/nightly-backup/ping", key=genie_key, method=method)
        assert answer.status_code == 202
    body = send(client, "/v2/heartbeats/nightly-backup/ping", key=genie_key, method="get").json()

    assert body["result"] == "PONG - Heartbeat received"
    assert_opsgenie_answer(body)
    beat.refresh_from_db()
    offline.refresh_from_db()
    assert beat.last_seen_at is not None and offline.status == "resolved"


def test_only_an_opsgenie_heartbeat_can_be_pinged(client, genie_key, make_device):
    make_device("Desk phone 1", heartbeat_interval_seconds=60)

    for name in ("Desk phone 1", "no-such-heartbeat"):
        answer = send(client, f"/v2/heartbeats/{name}/ping", key=genie_key, method="get")
        assert answer.status_code == 404
        assert answer.json()["message"] == f"Heartbeat with name [{name}] does not exist."
    assert send(client, "/v2/heartbeats/x/ping", method="get").status_code == 401
    assert Device.objects.get(name="Desk phone 1").last_seen_at is None


@pytest.fixture
def alertmanager_to_opsgenie(tmp_path, live_server, genie_key):
    """A real Alertmanager whose Opsgenie receiver has our base URL and an integration's key:
    the whole move."""
    config = {
        "route": {"receiver": "opsgenie", "group_by": ["alertname"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "opsgenie", "opsgenie_configs": [
            {"api_url": live_server.url + "/", "api_key": genie_key, "priority": "P2",
             "tags": "database,disk", "send_resolved": True}]}],
    }  # fmt: skip
    with running(config, tmp_path) as url:
        yield url


@pytest.mark.django_db(transaction=True)
def test_alertmanagers_opsgenie_receiver_moved_by_base_url_and_key(alertmanager_to_opsgenie):
    post_alert(alertmanager_to_opsgenie)

    def opened():
        """Alertmanager's Opsgenie alert is an open alarm"""
        return Alarm.objects.filter(source="opsgenie", status="triggered").first()

    alarm = wait_until(opened, timeout=30)
    assert alarm.severity == "high" and alarm.labels["tags"] == "database,disk"
    assert alarm.title.startswith("[FIRING:1] DiskFull")

    ended = (timezone.now() - timedelta(seconds=1)).isoformat()
    post_alert(alertmanager_to_opsgenie, endsAt=ended)

    def closed():
        """its close by alias resolved the alarm"""
        return Alarm.objects.get(pk=alarm.pk).status == "resolved"

    wait_until(closed, timeout=30)
