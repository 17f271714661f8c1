"""Text a database cannot hold (NUL, which PostgreSQL refuses in text and JSON; a lone surrogate,
which no database encodes) is stored as U+FFFD with the fact on the alarm's timeline, and a piece
of a group the database refuses costs none of the others: one malformed byte never costs an alarm.
"""

import copy
import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from alarms.models import Alarm, MetricRule
from alarms.sources.tests.payloads import pagerduty_event
from alarms.sources.tests.test_alertmanager import firing
from devices.models import Device

pytestmark = pytest.mark.django_db


def as_sent(body) -> str:
    """The body as JSON, each <NUL> and <SURROGATE> written as the escape a sender writes."""
    return json.dumps(body).replace("<NUL>", "\\u0000").replace("<SURROGATE>", "\\ud800")


def post(client, path, body: str, token=None):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(path, body, content_type="application/json", **extra)


def timeline_texts(alarm) -> list[str]:
    return [event.text for event in alarm.events.order_by("id")]


def refuse_alarms_titled(word: str) -> None:
    """Make the database itself refuse to store an alarm whose title holds `word`."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_titled() RETURNS trigger AS $$ BEGIN"
                f" IF NEW.title LIKE '%%{word}%%' THEN RAISE EXCEPTION 'refused'; END IF;"
                " RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_titled BEFORE INSERT ON alarms_alarm"
                " FOR EACH ROW EXECUTE FUNCTION refuse_titled()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse_titled BEFORE INSERT ON alarms_alarm"
                f" WHEN NEW.title LIKE '%{word}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )


# --- the JSON raise and clear -------------------------------------------------------------


@pytest.fixture
def generic(make_device):
    return make_device("Boiler sensor", kind=Device.Kind.GENERIC)[1]


def test_a_nul_in_a_label_key_and_value_is_stored_as_a_replacement_character(client, generic):
    body = as_sent({"title": "Boiler", "labels": {"zone<NUL>": "east<NUL>"}})

    response = post(client, "/v1/alarms/raise", body, generic)

    assert response.status_code == 201, response.content
    alarm = Alarm.objects.get()
    assert alarm.labels == {"zone\ufffd": "east\ufffd"}
    assert "labels.zone\ufffd" in timeline_texts(alarm)[-1]


def test_a_nul_in_a_raise_title_and_message_is_stored_not_refused(client, generic):
    body = as_sent({"title": "Boi<NUL>ler", "message": "low<NUL>"})

    response = post(client, "/v1/alarms/raise", body, generic)

    assert response.status_code == 201, response.content
    alarm = Alarm.objects.get()
    assert (alarm.title, alarm.message) == ("Boi\ufffdler", "low\ufffd")
    assert "title, message" in timeline_texts(alarm)[-1]


def test_a_lone_surrogate_where_a_choice_is_expected_is_a_400_not_a_500(client, generic):
    body = as_sent({"title": "Boiler", "severity": "hot<SURROGATE>"})

    response = post(client, "/v1/alarms/raise", body, generic)

    assert response.status_code == 400
    assert "severity" in response.json()["fields"]


def test_a_clear_whose_message_holds_a_nul_resolves_the_alarm(client, generic):
    post(client, "/v1/alarms/raise", '{"title": "Boiler", "dedup_key": "b"}', generic)

    body = as_sent({"dedup_key": "b", "message": "ok<NUL>"})
    response = post(client, "/v1/alarms/clear", body, generic)

    assert response.status_code == 200, response.content
    alarm = Alarm.objects.get()
    assert alarm.status == "resolved"
    assert "ok\ufffd" in timeline_texts(alarm)


# --- Alertmanager ---------------------------------------------------------------------------


@pytest.fixture
def alertmanager(make_device):
    return make_device("AM", kind=Device.Kind.ALERTMANAGER, room=None)[1]


def three_alerts() -> dict:
    """One group: the database primary's alert between two fridges', the last one critical."""
    payload = firing()
    middle = copy.deepcopy(payload["alerts"][1])
    middle["labels"]["instance"], middle["fingerprint"] = "db<NUL>x", "aaaabbbbccccdddd"
    last = copy.deepcopy(payload["alerts"][0])
    last["labels"]["instance"], last["fingerprint"] = "fridge-9:9100", "9999888877776666"
    payload["alerts"] = [payload["alerts"][0], middle, last]
    return payload


def test_an_alertmanager_group_with_a_nul_in_one_alert_stores_every_alert(client, alertmanager):
    body = as_sent(three_alerts())

    response = post(client, "/v1/integrations/alertmanager", body, alertmanager)

    assert response.status_code == 200, response.content
    assert [r["action"] for r in response.json()["alerts"]] == ["raised"] * 3
    assert Alarm.objects.count() == 3
    middle = Alarm.objects.get(labels__instance="db\ufffdx")
    assert "labels.instance" in timeline_texts(middle)[-1]
    assert Alarm.objects.filter(labels__instance="fridge-9:9100", severity="critical").exists()


def test_a_lone_surrogate_in_an_alertmanager_summary_is_stored_as_a_replacement_character(
    client, alertmanager
):
    payload = firing()
    payload["alerts"][0]["annotations"]["summary"] = "Fridge <SURROGATE> 11 C"
    body = as_sent(payload)

    response = post(client, "/v1/integrations/alertmanager", body, alertmanager)

    assert response.status_code == 200, response.content
    alarm = Alarm.objects.get(pk=response.json()["alerts"][0]["alarm_id"])
    assert alarm.title == "Fridge \ufffd 11 C"
    assert alarm.details["annotations"]["summary"] == "Fridge \ufffd 11 C"
    assert "annotations.summary" in timeline_texts(alarm)[-1]


def test_a_nul_in_an_alertmanager_annotation_key_is_stored(client, alertmanager):
    payload = firing()
    payload["alerts"][1]["annotations"]["runbook<NUL>"] = "https://wiki/fridges"
    body = as_sent(payload)

    response = post(client, "/v1/integrations/alertmanager", body, alertmanager)

    assert response.status_code == 200, response.content
    alarm = Alarm.objects.get(pk=response.json()["alerts"][1]["alarm_id"])
    assert alarm.details["annotations"]["runbook\ufffd"] == "https://wiki/fridges"


def test_an_alert_the_database_refuses_costs_none_of_the_others(client, alertmanager):
    payload = three_alerts()
    payload["alerts"][1]["annotations"]["summary"] = "poison"
    refuse_alarms_titled("poison")

    response = post(client, "/v1/integrations/alertmanager", as_sent(payload), alertmanager)

    assert response.status_code == 200, response.content
    results = response.json()["alerts"]
    assert [r["action"] for r in results] == ["raised", "failed", "raised"]
    assert results[1]["alarm_id"] is None and results[1]["error"]
    assert Alarm.objects.count() == 2
    assert Alarm.objects.filter(labels__instance="fridge-9:9100").exists()


# --- PagerDuty ------------------------------------------------------------------------------


def test_a_nul_and_a_lone_surrogate_in_a_pagerduty_event_are_stored(client, make_device):
    _, key = make_device("PD", kind=Device.Kind.PAGERDUTY, room=None)
    event = pagerduty_event(key, summary="Disk <SURROGATE> full", custom_details={"m<NUL>": "/var"})
    body = as_sent(event)

    response = post(client, "/v2/enqueue", body)

    assert response.status_code == 202, response.content
    alarm = Alarm.objects.get()
    assert alarm.title == "Disk \ufffd full"
    assert alarm.details["custom_details"] == {"m\ufffd": "/var"}
    assert "payload.summary, payload.custom_details.m\ufffd" in timeline_texts(alarm)[-1]


# --- metrics --------------------------------------------------------------------------------


@pytest.fixture
def sender(make_device):
    return make_device("Gateway", kind=Device.Kind.METRICS, room=None)[1]


@pytest.fixture
def any_fridge_warm(db):
    return MetricRule.objects.create(
        name="Fridge warm", metric="fridge_c", operator=">", threshold=8, for_seconds=0
    )


def sample(value: float, fridge: str = "3") -> dict:
    return {"name": "fridge_c", "value": value, "labels": {"fridge": fridge},
            "time": str(datetime.now(UTC).timestamp())}  # fmt: skip


def test_a_nul_in_a_metric_label_raises_its_alarm_with_the_label_made_storable(
    client, sender, any_fridge_warm
):
    body = as_sent(sample(9.5, fridge="3<NUL>"))

    response = post(client, "/v1/metrics", body, sender)

    assert response.status_code == 200, response.content
    (change,) = response.json()["changes"]
    alarm = Alarm.objects.get(pk=change["alarm_id"])
    assert alarm.labels == {"fridge": "3\ufffd", "metric": "fridge_c"}
    assert "labels.fridge" in timeline_texts(alarm)[-1]


def test_a_batch_with_a_nul_in_one_sample_raises_every_alarm(client, sender, any_fridge_warm):
    body = as_sent({"metrics": [sample(9.5, "1"), sample(9.5, "2<NUL>"), sample(9.5, "3")]})

    response = post(client, "/v1/metrics/batch", body, sender)

    assert response.status_code == 200, response.content
    assert [c["labels"]["fridge"] for c in response.json()["changes"]] == ["1", "2\ufffd", "3"]
    assert Alarm.objects.count() == 3


def test_a_sample_whose_alarm_the_database_refuses_costs_none_of_the_batch(
    client, sender, any_fridge_warm
):
    any_fridge_warm.name = "poison"
    any_fridge_warm.save()
    other = MetricRule.objects.create(name="Fridge hot", metric="fridge_c", operator=">",
                                      threshold=9, for_seconds=0)  # fmt: skip
    refuse_alarms_titled("poison")

    response = post(client, "/v1/metrics/batch", as_sent({"metrics": [sample(9.5)]}), sender)

    assert response.status_code == 200, response.content
    body = response.json()
    assert [c["rule"] for c in body["changes"]] == [other.name]
    assert body["failed"] == [{"rule": "poison", "labels": {"fridge": "3"},
                               "error": body["failed"][0]["error"]}]  # fmt: skip
    assert Alarm.objects.get().title.startswith("Fridge hot")


def test_a_byte_that_is_not_utf8_is_stored_as_a_replacement_character(client, generic):
    body = b'{"title": "Caf\\u00e9 \xe9 fridge"}'  # the second one in Latin-1

    response = client.post("/v1/alarms/raise", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {generic}")  # fmt: skip

    assert response.status_code == 201, response.content
    assert Alarm.objects.get().title == "Café \ufffd fridge"
