"""Bad input gets a clear 4xx with a JSON body on every API endpoint, never a 500: bodies nested
too deeply, limits no database holds, invalid PagerDuty events, a heartbeat without credentials.
And the API answers what its schema (/v1/schema) says it does."""

import json

import pytest
import yaml

from alarms import lifecycle
from alarms.timeline import SYSTEM
from devices.models import Device

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


def nested(levels: int) -> dict:
    value = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.fixture
def tokens(make_device) -> dict:
    """A token of each kind, by the endpoint it opens."""
    kinds = {"generic": Device.Kind.GENERIC, "alertmanager": Device.Kind.ALERTMANAGER,
             "metrics": Device.Kind.METRICS, "pagerduty": Device.Kind.PAGERDUTY}  # fmt: skip
    return {name: make_device(name, kind=kind)[1] for name, kind in kinds.items()}


def post(client, path, body: str, token=None):
    extra = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(path, body, content_type="application/json", **extra)


BEARER_ENDPOINTS = [
    ("/v1/alarms/raise", "generic"),
    ("/v1/alarms/clear", "generic"),
    ("/v1/integrations/alertmanager", "alertmanager"),
    ("/v1/metrics", "metrics"),
    ("/v1/metrics/batch", "metrics"),
]


@pytest.mark.parametrize(("path", "kind"), BEARER_ENDPOINTS)
def test_a_body_nested_100000_deep_is_a_400_saying_so(client, tokens, path, kind):
    response = post(client, path, DEEP, tokens[kind])

    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.json()["error"]


@pytest.mark.parametrize(("path", "kind"), BEARER_ENDPOINTS)
def test_a_body_nested_past_the_limit_but_within_the_parser_is_a_400(client, tokens, path, kind):
    response = post(client, path, json.dumps({"title": "x", "labels": nested(200)}), tokens[kind])

    assert response.status_code == 400
    assert "nested deeper" in response.json()["error"]


def test_an_alarm_action_with_a_body_nested_100000_deep_is_a_400(admin_client):
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="x", actor=SYSTEM).alarm

    response = post(admin_client, f"/v1/alarms/{alarm.pk}/acknowledge", DEEP)

    assert response.status_code == 400
    assert "nested deeper" in response.json()["error"]
    alarm.refresh_from_db()
    assert alarm.status == "triggered"


@pytest.mark.parametrize("path", ["/v2/enqueue", "/v1/integrations/pagerduty"])
def test_a_pagerduty_event_nested_100000_deep_is_pagerdutys_400(client, path):
    response = post(client, path, DEEP)

    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
    assert "nested deeper" in body["errors"][0]


def test_an_invalid_json_pagerduty_event_gets_pagerdutys_error_shape(client):
    response = post(client, "/v2/enqueue", "{nope")

    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
    assert body["errors"][0].startswith("JSON parse error")


def test_pagerduty_errors_name_a_payload_field_by_its_path(client, tokens):
    event = {"routing_key": tokens["pagerduty"], "event_action": "trigger",
             "payload": {"source": "db", "severity": "fatal"}}  # fmt: skip

    errors = post(client, "/v2/enqueue", json.dumps(event)).json()["errors"]

    assert sorted(e.split(":")[0] for e in errors) == ["payload.severity", "payload.summary"]


def test_an_alarm_list_limit_of_25_digits_is_answered(admin_client):
    lifecycle.raise_alarm(source="api", dedup_key="k", title="x", actor=SYSTEM)

    response = admin_client.get("/v1/alarms/", {"limit": "9" * 25})

    assert response.status_code == 200
    assert [a["title"] for a in response.json()["results"]] == ["x"]


def test_a_heartbeat_post_without_credentials_is_a_401_asking_for_a_bearer_token(client):
    response = client.post("/v1/devices/heartbeat")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]


def test_a_heartbeat_post_with_an_unknown_token_is_a_401(client):
    response = client.post("/v1/devices/heartbeat", HTTP_AUTHORIZATION="Bearer nope")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_heartbeat_get_with_an_unknown_token_is_still_a_404(client):
    assert client.get("/v1/devices/heartbeat", {"token": "nope"}).status_code == 404


# --- what the schema says -------------------------------------------------------------------


@pytest.fixture
def alarm_schema(client) -> dict:
    schema = yaml.safe_load(client.get("/v1/schema").content)
    return schema["components"]["schemas"]["Alarm"]["properties"]


def test_the_schema_says_an_alarms_relations_may_be_null(admin_client, alarm_schema):
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="x", actor=SYSTEM).alarm
    answered = admin_client.get(f"/v1/alarms/{alarm.pk}").json()

    for field in ("site", "room", "person", "device", "policy"):
        assert answered[field] is None
        assert alarm_schema[field] == {"type": "string", "readOnly": True, "nullable": True}


def test_an_alarm_carries_its_details_as_the_schema_says(admin_client, alarm_schema):
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="x", actor=SYSTEM,
                                  details={"generatorURL": "http://prom/graph"}).alarm  # fmt: skip

    listed = admin_client.get("/v1/alarms/").json()["results"][0]

    assert listed["details"] == {"generatorURL": "http://prom/graph"}
    assert admin_client.get(f"/v1/alarms/{alarm.pk}").json()["details"] == listed["details"]
    assert alarm_schema["details"]["type"] == "object"
