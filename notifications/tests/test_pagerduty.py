"""PagerDuty against a local server that speaks Events API v2 and validates events as
PagerDuty does, keeping its alerts by dedup key: trigger on a step, acknowledge on ACK,
resolve on resolve or cancel, all on the alert keyed by our alarm id."""

import json
import logging
import threading
import uuid
from datetime import datetime

import pytest
from django.conf import settings
from django.utils import timezone

from alarms import lifecycle
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import SYSTEM, Actor
from conftest import free_port
from notifications.delivery import sending
from notifications.models import Delivery, NotificationChannel

from .fake_provider import Answer
from .steps import drain, run_step, send

pytestmark = pytest.mark.django_db

ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"
DANA = Actor("Dispatcher Dana")


class FakePagerDuty:
    """POST /v2/enqueue: validates an event like PagerDuty and applies it to its alerts."""

    ACTIONS = ("trigger", "acknowledge", "resolve")
    SEVERITIES = ("critical", "error", "warning", "info")

    def __init__(self, server):
        self.server, self.url = server, server.url + "/v2/enqueue"
        self.alerts: dict[str, dict] = {}  # open or last alert per dedup key
        self.lock = threading.Lock()
        server.route("POST", "/v2/enqueue", self.enqueue)

    @staticmethod
    def _string(value) -> bool:
        return isinstance(value, str) and bool(value.strip())

    def errors_in(self, event) -> list[str]:
        if not isinstance(event, dict):
            return ["Event object must be a JSON object"]
        errors = []
        key = event.get("routing_key")
        if not self._string(key):
            errors.append("'routing_key' is missing or blank")
        elif len(key) != 32:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        action = event.get("event_action")
        if action not in self.ACTIONS:
            errors.append("'event_action' is invalid (must be trigger, acknowledge or resolve)")
        dedup_key = event.get("dedup_key")
        if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not self._string(dedup_key):
            errors.append("'dedup_key' is required for acknowledge and resolve events")
        if action == "trigger":
            errors += self.payload_errors(event.get("payload"))
        for link in event.get("links", []):
            if not isinstance(link, dict) or not self._string(link.get("href")):
                errors.append("Each of 'links' needs an 'href'")
        return errors

    def payload_errors(self, payload) -> list[str]:
        if not isinstance(payload, dict):
            return ["'payload' is missing or blank"]
        errors = [
            f"'payload.{name}' is missing or blank"
            for name in ("summary", "source")
            if not self._string(payload.get(name))
        ]
        if len(payload.get("summary") or "") > 1024:
            errors.append("Length of 'payload.summary' must be at most 1024")
        if payload.get("severity") not in self.SEVERITIES:
            errors.append(
                "'payload.severity' is invalid (must be critical, error, warning or info)"
            )
        for name in ("component", "group", "class"):
            if payload.get(name) is not None and not isinstance(payload[name], str):
                errors.append(f"'payload.{name}' must be a string")
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
        if payload.get("timestamp") is not None:
            try:
                datetime.fromisoformat(payload["timestamp"])
            except (TypeError, ValueError):
                errors.append("'payload.timestamp' is not an ISO 8601 timestamp")
        return errors

    def enqueue(self, request, match):
        try:
            event = request.json
        except ValueError:
            event = None
        if errors := self.errors_in(event):
            return Answer(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
            )
        key = event.get("dedup_key") or uuid.uuid4().hex
        with self.lock:
            alert = self.alerts.get(key)
            if event["event_action"] == "trigger":
                if alert is None or alert["status"] == "resolved":
                    alert = self.alerts[key] = {"status": "triggered", "log": []}
                alert["payload"] = event["payload"]
                alert["log"].append("trigger")
            elif alert is not None and alert["status"] != "resolved":
                # Acknowledge and resolve of an unknown or resolved alert are dropped.
                alert["status"] = event["event_action"] + "d"
                alert["log"].append(event["event_action"])
        return Answer(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def events(self) -> list[dict]:
        return [r.json for r in self.server.requests]

    def actions(self) -> list[str]:
        return [e["event_action"] for e in self.events()]


@pytest.fixture
def pagerduty(provider):
    return FakePagerDuty(provider)


@pytest.fixture
def pd_channel(pagerduty):
    return NotificationChannel.objects.create(
        kind="pagerduty",
        name="PagerDuty Ops",
        config={"routing_key": ROUTING_KEY, "url": pagerduty.url},
    )


@pytest.fixture
def raise_alarm(make_device, make_policy, pd_channel):
    """Raise an alarm whose policy posts to PagerDuty on step 1 and again on step 2."""
    raised = []

    def raise_(severity="critical", channels=None):
        channels = channels or [pd_channel]
        n = len(raised) + 1
        policy = make_policy([(0, [], channels), (120, [], channels)], name=f"Policy {n}")
        device, _ = make_device(f"Fridge sensor {n}", default_policy=policy)
        raised.append(device)
        return lifecycle.raise_alarm(
            source="api", dedup_key=f"fridge-{n}", title="Fridge too warm", actor=SYSTEM,
            message="Vaccine fridge at 11.2 °C.", severity=severity, labels={"fridge": "F-7"},
            device=device,
        ).alarm  # fmt: skip

    return raise_


def triggered(alarm) -> Delivery:
    [row] = run_step(alarm)
    return send(row)


def follow_up(alarm, event: str) -> Delivery:
    return send(Delivery.objects.get(alarm=alarm, event=event))


def wait_of(row: Delivery) -> float:
    return (row.next_attempt_at - timezone.now()).total_seconds()


# --- the alert's life ----------------------------------------------------------------------


def test_a_step_triggers_an_alert_keyed_by_the_alarm_id(raise_alarm, pagerduty):
    alarm = raise_alarm()

    sent = triggered(alarm)

    url = f"{settings.PUBLIC_BASE_URL}/admin/alarms/alarm/{alarm.pk}/change/"
    assert pagerduty.events() == [
        {
            "routing_key": ROUTING_KEY,
            "dedup_key": str(alarm.pk),
            "event_action": "trigger",
            "payload": {
                "summary": "[CRITICAL] Fridge too warm — Clinic North / Reception",
                "source": "Fridge sensor 1",
                "severity": "critical",
                "timestamp": alarm.created_at.isoformat(),
                "component": "Reception",
                "group": "Clinic North",
                "class": "api",
                "custom_details": {
                    "message": "Vaccine fridge at 11.2 °C.",
                    "person": None,
                    "location": "Clinic North / Reception",
                    "occurrences": 1,
                    "labels": {"fridge": "F-7"},
                    "escalation": {"step": 1, "round": 1},
                },
            },
            "links": [{"href": url, "text": "Alarm in the broker"}],
            "client": "Alarm broker",
            "client_url": url,
        }
    ]
    assert pagerduty.alerts[str(alarm.pk)]["status"] == "triggered"
    assert (sent.status, sent.provider_status, sent.attempts) == ("sent", "HTTP 202", 1)
    assert sent.provider_message_id == str(alarm.pk)
    assert json.loads(sent.response)["message"] == "Event processed"
    assert sent.latency_ms is not None and sent.error == ""


def test_no_ack_link_is_issued_for_pagerduty(raise_alarm):
    alarm = raise_alarm()

    sent = triggered(alarm)

    assert not alarm.ack_links.exists()
    assert "/a/" not in sent.message


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("critical", "critical"), ("high", "error"), ("warning", "warning"), ("info", "info")],
)
def test_severity_maps_onto_pagerdutys_levels(raise_alarm, pagerduty, ours, theirs):
    alarm = raise_alarm(severity=ours)

    assert triggered(alarm).status == "sent"

    [event] = pagerduty.events()
    assert event["payload"]["severity"] == theirs
    assert event["payload"]["summary"].startswith(f"[{ours.upper()}] Fridge too warm")


def test_acknowledge_then_resolve_reach_the_same_alert(raise_alarm, pagerduty):
    alarm = raise_alarm()
    triggered(alarm)

    lifecycle.acknowledge(alarm.pk, DANA)
    acked = follow_up(alarm, "acknowledged")
    assert pagerduty.alerts[str(alarm.pk)]["status"] == "acknowledged"
    lifecycle.resolve(alarm.pk, DANA)
    resolved = follow_up(alarm, "resolved")

    key = str(alarm.pk)
    assert pagerduty.events()[1:] == [
        {"routing_key": ROUTING_KEY, "dedup_key": key, "event_action": "acknowledge"},
        {"routing_key": ROUTING_KEY, "dedup_key": key, "event_action": "resolve"},
    ]
    assert pagerduty.alerts[key] == {
        "status": "resolved",
        "log": ["trigger", "acknowledge", "resolve"],
        "payload": pagerduty.events()[0]["payload"],
    }
    for row in (acked, resolved):
        assert (row.status, row.provider_status, row.provider_message_id) == (
            "sent", "HTTP 202", key,
        )  # fmt: skip


def test_cancelling_resolves_the_alert(raise_alarm, pagerduty):
    alarm = raise_alarm()
    triggered(alarm)

    lifecycle.cancel(alarm.pk, DANA, note="false alarm")
    assert follow_up(alarm, "cancelled").status == "sent"

    assert pagerduty.actions() == ["trigger", "resolve"]
    assert pagerduty.alerts[str(alarm.pk)]["status"] == "resolved"


def test_a_later_step_triggers_the_same_alert_again(raise_alarm, pagerduty):
    alarm = raise_alarm()
    triggered(alarm)

    [step2] = run_step(alarm)
    assert send(step2).status == "sent"

    assert pagerduty.actions() == ["trigger", "trigger"]
    assert {e["dedup_key"] for e in pagerduty.events()} == {str(alarm.pk)}
    assert list(pagerduty.alerts) == [str(alarm.pk)]
    payload = pagerduty.alerts[str(alarm.pk)]["payload"]
    assert payload["custom_details"]["escalation"] == {"step": 2, "round": 1}
    assert payload["summary"].startswith("Escalated: [CRITICAL]")


def test_an_ack_before_the_trigger_went_out_sends_nothing(raise_alarm, pagerduty):
    alarm = raise_alarm()
    [row] = run_step(alarm)

    lifecycle.acknowledge(alarm.pk, DANA)
    lifecycle.resolve(alarm.pk, DANA)

    row.refresh_from_db()
    assert row.status == "cancelled"
    assert Delivery.objects.filter(alarm=alarm).count() == 1
    assert pagerduty.events() == []


# --- failures -------------------------------------------------------------------------------


def test_a_429_waits_for_its_retry_after(raise_alarm, pagerduty):
    alarm = raise_alarm()
    pagerduty.server.fail(
        429, retry_after="120", body={"status": "throttle event", "message": "Too many requests"}
    )

    first = triggered(alarm)

    assert (first.status, first.attempts, first.provider_status) == ("pending", 1, "HTTP 429")
    assert 118 < wait_of(first) <= 121
    assert sending.attempt(first.pk) is None, "not before its time"
    drain(alarm)
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("sent", 2)
    assert pagerduty.actions() == ["trigger", "trigger"]
    assert pagerduty.alerts[str(alarm.pk)]["log"] == ["trigger"]


def test_a_429_without_retry_after_backs_off_exponentially(raise_alarm, pagerduty):
    alarm = raise_alarm()
    pagerduty.server.fail(429, body="Too many requests")
    pagerduty.server.fail(429, body="Too many requests")
    [row] = run_step(alarm)

    first_wait = wait_of(send(row))
    second_wait = wait_of(send(row))

    # DELIVERY_RETRY_BASE_SECONDS is 10: the first wait is 5-10 s, the second 10-20 s.
    assert 4 < first_wait <= 10
    assert 9 < second_wait <= 20
    assert send(row).status == "sent"


def test_a_server_error_is_retried(raise_alarm, pagerduty):
    alarm = raise_alarm()
    pagerduty.server.fail(502, body="<html>Bad Gateway</html>")

    first = triggered(alarm)

    assert (first.status, first.provider_status) == ("pending", "HTTP 502")
    assert "Bad Gateway" in first.error
    drain(alarm)
    assert Delivery.objects.get(pk=first.pk).status == "sent"
    assert len(pagerduty.alerts) == 1


def test_an_event_is_tried_past_the_attempt_limit_until_pagerduty_takes_it(
    raise_alarm, pagerduty, settings
):  # an incident kept in step with the alarm: its trigger, and later its resolve, must arrive
    settings.DELIVERY_MAX_ATTEMPTS = 2
    alarm = raise_alarm()
    for _ in range(3):
        pagerduty.server.fail(500)

    [row] = run_step(alarm)
    assert [send(row).status for _ in range(3)] == ["pending", "pending", "pending"]
    assert send(row).status == "sent"

    assert not alarm.events.filter(kind="delivery_failed").exists()
    assert len(pagerduty.alerts) == 1


def test_a_routing_key_of_the_wrong_length_is_refused_for_good(raise_alarm, pagerduty, pd_channel):
    pd_channel.config["routing_key"] = ROUTING_KEY[:-1]
    pd_channel.save()
    alarm = raise_alarm()

    failed = triggered(alarm)

    assert (failed.status, failed.attempts, failed.provider_status) == ("failed", 1, "HTTP 400")
    assert failed.next_attempt_at is None
    assert "Event object is invalid" in failed.error
    assert "Length of 'routing_key' is incorrect" in failed.error
    assert pagerduty.alerts == {}
    assert "after a permanent error" in alarm.events.get(kind="delivery_failed").text

    lifecycle.resolve(alarm.pk, DANA)
    assert len(pagerduty.events()) == 1, "nothing to resolve: the trigger never went out"


# --- secrets -----------------------------------------------------------------------------------


def stored_text() -> str:
    """Everything the broker wrote down about deliveries: rows, timeline, remembered refs."""
    return json.dumps(
        [
            list(Delivery.objects.values()),
            list(AlarmEvent.objects.values()),
            list(Alarm.objects.values_list("external_refs", flat=True)),
        ],
        default=str,
    )


def test_the_routing_key_is_never_written_down(raise_alarm, pagerduty, caplog):
    caplog.set_level(logging.DEBUG)
    alarm = raise_alarm()
    # Errors that quote the key back: a proxy's 500 page, a 429, and PagerDuty refusing it.
    pagerduty.server.fail(500, body=f"<html>upstream error for {ROUTING_KEY}</html>")
    pagerduty.server.fail(429, body={"message": f"Throttled: routing_key={ROUTING_KEY}"})
    first = triggered(alarm)
    assert "***" in first.error
    drain(alarm)
    lifecycle.acknowledge(alarm.pk, DANA)
    lifecycle.resolve(alarm.pk, DANA)
    drain(alarm)
    assert pagerduty.actions()[-3:] == ["trigger", "acknowledge", "resolve"]
    down = NotificationChannel.objects.create(
        kind="pagerduty", name="PagerDuty (down)",
        config={"routing_key": ROUTING_KEY, "url": f"http://127.0.0.1:{free_port()}/v2/enqueue"},
    )  # fmt: skip
    pd = NotificationChannel.objects.get(name="PagerDuty Ops")
    other = raise_alarm(channels=[pd, down])
    pagerduty.server.fail(
        400, body={"status": "invalid event", "errors": [f"Unknown routing_key {ROUTING_KEY}"]}
    )
    rows = {row.channel.name: send(row) for row in run_step(other)}

    assert rows["PagerDuty Ops"].status == "failed"
    assert rows["PagerDuty (down)"].status == "pending"
    assert "connection failed" in rows["PagerDuty (down)"].error
    assert all(e["routing_key"] == ROUTING_KEY for e in pagerduty.events()), "the key was sent"
    assert ROUTING_KEY not in stored_text()
    assert "127.0.0.1" in caplog.text, "HTTP calls were logged at DEBUG"
    assert ROUTING_KEY not in caplog.text + "".join(r.getMessage() for r in caplog.records)
