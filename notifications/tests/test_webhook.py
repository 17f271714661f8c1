"""The signed JSON webhook, against a receiver that checks requests exactly as docs/WEBHOOKS.md
tells receivers to (its Python snippet is the one run here): one event per lifecycle change,
a stable event_id across retries, secrets kept out of the audit, and which answers we retry."""

import hashlib
import hmac
import json
import logging
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import SYSTEM, Actor
from notifications.models import Delivery, NotificationChannel
from notifications.tests.steps import make_due, send_pending
from notifications.transports import CHANNEL_KINDS, transport_class

from .fake_provider import Answer

pytestmark = pytest.mark.django_db

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "WEBHOOKS.md"
SECRET = "whsec-correct-horse-battery-staple"
HOOK_PATH = "/hooks/alarms"
BASE = "https://alarms.example.org"


def _guide_snippet() -> dict:
    """Run the receiver's verification code from the guide, as a receiver would paste it."""
    code = re.search(r"```python\n(.*?)```", GUIDE.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, str(GUIDE), "exec"), namespace)
    return namespace


verify = _guide_snippet()["verify"]


def is_ours(request, secret=SECRET) -> bool:
    headers = request.headers
    return verify(
        secret,
        headers.get("x-alarm-timestamp", ""),
        headers.get("x-alarm-signature", ""),
        request.body,
    )


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.PUBLIC_BASE_URL = BASE
    settings.DELIVERY_RETRY_BASE_SECONDS = 10


@pytest.fixture
def receiver(provider):
    """A receiver holding SECRET: 401 for a request it cannot verify, else 200."""

    def receive(request, match):
        if not is_ours(request):
            return Answer(401, {"error": "bad signature"})
        return Answer(200, {"received": json.loads(request.body)["event_id"]})

    provider.route("POST", HOOK_PATH, receive)
    return provider


@pytest.fixture
def hook(receiver):
    return NotificationChannel.objects.create(
        kind="webhook",
        name="Ops webhook",
        config={"url": receiver.url + HOOK_PATH, "secret": SECRET},
    )


@pytest.fixture
def raise_to(make_policy, make_device, alice):
    """raise_to(steps): Alice's desk phone raises an alarm with a policy of these
    (delay, channels) steps; the first step runs."""

    def raise_(steps, key="reception", title="Emergency key pressed"):
        policy = make_policy([(delay, [], channels) for delay, channels in steps], name=key)
        device, _ = make_device(f"Desk phone {key}", person=alice, default_policy=policy)
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key=key, title=title, device=device, actor=SYSTEM
        ).alarm
        assert engine.run_due_step(alarm.pk)
        return alarm

    return raise_


def run_next_step(alarm) -> None:
    Alarm.objects.filter(pk=alarm.pk).update(next_escalation_at=timezone.now())
    assert engine.run_due_step(alarm.pk)


def events(provider) -> list[str]:
    return [request.json["event"] for request in provider.requests]


# --- events -------------------------------------------------------------------------------


def test_every_lifecycle_change_arrives_signed_with_its_own_event(receiver, hook, raise_to):
    alarm = raise_to([(0, [hook]), (60, [hook])])
    send_pending(alarm)
    run_next_step(alarm)
    send_pending(alarm)
    lifecycle.acknowledge(alarm.pk, Actor("Carol"))
    send_pending(alarm)
    lifecycle.resolve(alarm.pk, Actor("Dana"))
    send_pending(alarm)

    assert events(receiver) == [
        "alarm.triggered", "alarm.escalated", "alarm.acknowledged", "alarm.resolved"
    ]  # fmt: skip
    for request in receiver.requests:
        assert is_ours(request)
        assert request.headers["x-alarm-event"] == request.json["event"]
        assert request.headers["content-type"] == "application/json"
        assert abs(time.time() - int(request.headers["x-alarm-timestamp"])) < 60
    bodies = [request.json for request in receiver.requests]
    assert [b["escalation"] for b in bodies[:2]] == [
        {"step": 1, "round": 1},
        {"step": 2, "round": 1},
    ]
    assert [b["alarm"]["status"] for b in bodies] == [
        "triggered", "triggered", "acknowledged", "resolved"
    ]  # fmt: skip
    assert (bodies[2]["alarm"]["acknowledged_by"], bodies[3]["alarm"]["resolved_by"]) == (
        "Carol",
        "Dana",
    )
    assert len({b["event_id"] for b in bodies}) == 4
    assert {b["alarm"]["id"] for b in bodies} == {str(alarm.pk)}
    assert list(alarm.deliveries.values_list("status", flat=True)) == ["sent"] * 4


def test_a_cancelled_alarm_is_announced_as_cancelled(receiver, hook, raise_to):
    alarm = raise_to([(0, [hook])])
    send_pending(alarm)

    lifecycle.cancel(alarm.pk, Actor("Dana"))
    send_pending(alarm)

    assert events(receiver) == ["alarm.triggered", "alarm.cancelled"]
    assert receiver.requests[1].json["alarm"]["resolved_by"] == "Dana"


def test_the_body_is_the_alarm_as_plain_data_in_compact_sorted_json(receiver, hook, raise_to):
    alarm = raise_to([(0, [hook])], title='Fire <b>&</b> "east" wing')

    send_pending(alarm)

    request = receiver.requests[0]
    body = request.json
    assert request.body == json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    assert body == {
        "event": "alarm.triggered",
        "event_id": ANY,
        "escalation": {"step": 1, "round": 1},
        "sent_at": ANY,
        "alarm": {
            "id": str(alarm.pk),
            "title": 'Fire <b>&</b> "east" wing',  # the source's text, not escaped
            "message": "",
            "severity": "critical",
            "status": "triggered",
            "source": "yealink",
            "dedup_key": "reception",
            "labels": {},
            "occurrences": 1,
            "created_at": alarm.created_at.isoformat(),
            "site": "Clinic North",
            "room": "Reception",
            "location": "Clinic North / Reception",
            "person": "Alice",
            "device": "Desk phone reception",
            "acknowledged_by": None,
            "resolved_by": None,
            "reopen_count": 0,
            "reopened_at": None,
            "url": f"{BASE}/admin/alarms/alarm/{alarm.pk}/change/",
        },
    }
    assert abs(timezone.now() - datetime.fromisoformat(body["sent_at"])) < timedelta(seconds=30)
    assert "/a/" not in request.body.decode()  # no ACK link in a machine's message


def test_follow_ups_go_only_to_webhooks_a_step_reached(receiver, hook, raise_to):
    later = NotificationChannel.objects.create(
        kind="webhook", name="Later webhook", config={"url": receiver.url + HOOK_PATH}
    )
    alarm = raise_to([(0, [hook]), (300, [later])])
    send_pending(alarm)

    lifecycle.acknowledge(alarm.pk, Actor("Carol"))
    send_pending(alarm)

    assert events(receiver) == ["alarm.triggered", "alarm.acknowledged"]
    assert not alarm.deliveries.filter(channel=later).exists()


# --- signatures ---------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body(receiver, hook, raise_to):
    send_pending(raise_to([(0, [hook])]))

    request = receiver.requests[0]
    timestamp = request.headers["x-alarm-timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert request.headers["x-alarm-signature"] == f"v1={expected.hexdigest()}"


def test_the_guides_check_refuses_a_changed_body_another_secret_or_an_old_request(
    receiver, hook, raise_to
):
    send_pending(raise_to([(0, [hook])]))
    request = receiver.requests[0]
    timestamp, signature = (
        request.headers["x-alarm-timestamp"],
        request.headers["x-alarm-signature"],
    )

    assert verify(SECRET, timestamp, signature, request.body)
    assert not verify(SECRET, timestamp, signature, request.body.replace(b"critical", b"info"))
    assert not verify("another-secret", timestamp, signature, request.body)
    assert not verify(SECRET, str(int(timestamp) + 1), signature, request.body)
    assert not verify(SECRET, "not-a-time", signature, request.body)
    old = str(int(time.time()) - 301)
    old_signature = (
        "v1="
        + hmac.new(SECRET.encode(), old.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    )
    assert not verify(SECRET, old, old_signature, request.body)


def test_a_receiver_holding_another_secret_refuses_and_we_give_up_at_once(receiver, raise_to):
    wrong = NotificationChannel.objects.create(
        kind="webhook",
        name="Wrong secret",
        config={"url": receiver.url + HOOK_PATH, "secret": "an-old-secret"},
    )
    alarm = raise_to([(0, [wrong])])

    assert send_pending(alarm) == ["failed"]

    failed = alarm.deliveries.get()
    assert (failed.attempts, failed.provider_status) == (1, "HTTP 401")
    assert failed.error == 'HTTP 401: {"error": "bad signature"}'
    assert alarm.events.filter(kind=AlarmEvent.Kind.DELIVERY_FAILED).count() == 1


def test_an_unsigned_channel_sends_no_signature(provider, raise_to):
    provider.route("POST", HOOK_PATH, lambda request, match: Answer(204, b""))
    unsigned = NotificationChannel.objects.create(
        kind="webhook", name="Unsigned", config={"url": provider.url + HOOK_PATH}
    )

    assert send_pending(raise_to([(0, [unsigned])])) == ["sent"]

    headers = provider.requests[0].headers
    assert "x-alarm-signature" not in headers
    assert headers["x-alarm-event"] == "alarm.triggered"
    assert headers["x-alarm-timestamp"].isdigit()


# --- retries --------------------------------------------------------------------------------


def test_a_retry_carries_the_same_event_id_and_a_fresh_signature(receiver, hook, raise_to):
    alarm = raise_to([(0, [hook])])
    receiver.fail(500, body="upstream down")

    assert send_pending(alarm) == ["pending"]
    make_due(alarm.deliveries.get())
    assert send_pending(alarm) == ["sent"]

    first, second = receiver.requests
    assert first.json["event_id"] == second.json["event_id"]
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.headers["idempotency-key"] == first.json["event_id"]
    assert first.json["event"] == second.json["event"] == "alarm.triggered"
    assert is_ours(first) and is_ours(second)
    sent = alarm.deliveries.get()
    assert (sent.attempts, sent.provider_status, sent.error) == (2, "HTTP 200", "")


def test_a_follow_ups_event_id_is_stable_across_retries_too(receiver, hook, raise_to):
    alarm = raise_to([(0, [hook])])
    send_pending(alarm)
    lifecycle.acknowledge(alarm.pk, Actor("Carol"))
    receiver.fail(503, retry_after="1")

    assert send_pending(alarm) == ["pending"]
    make_due(alarm.deliveries.get(event="acknowledged"))
    assert send_pending(alarm) == ["sent"]

    acked = [
        r.json["event_id"] for r in receiver.requests if r.json["event"].endswith("knowledged")
    ]
    assert len(acked) == 2 and acked[0] == acked[1]


def test_a_server_error_is_retried_with_backoff(receiver, hook, raise_to):
    alarm = raise_to([(0, [hook])])
    receiver.fail(500, body="Internal Server Error")

    before = timezone.now()
    assert send_pending(alarm) == ["pending"]

    waiting = alarm.deliveries.get()
    assert (waiting.attempts, waiting.provider_status) == (1, "HTTP 500")
    assert waiting.error == "HTTP 500: Internal Server Error"
    # First retry: between half the base delay and the base delay.
    assert before + timedelta(seconds=5) <= waiting.next_attempt_at
    assert waiting.next_attempt_at <= timezone.now() + timedelta(seconds=10)
    assert not alarm.events.filter(kind=AlarmEvent.Kind.DELIVERY_FAILED).exists()


def attempted_a_minute_ago(row) -> None:
    Delivery.objects.filter(pk=row.pk).update(updated_at=timezone.now() - timedelta(minutes=1))


def test_a_message_waiting_for_its_provider_goes_as_soon_as_the_provider_accepts_another(
    receiver, hook, raise_to
):
    waiting = raise_to([(0, [hook])], key="boiler")
    receiver.fail(500, body="upstream down")
    assert send_pending(waiting) == ["pending"]  # its retry is 5 to 10 s away
    attempted_a_minute_ago(waiting.deliveries.get())

    assert send_pending(raise_to([(0, [hook])], key="door")) == ["sent"]  # the provider is back

    woken = waiting.deliveries.get()
    assert woken.status == "pending" and woken.next_attempt_at <= timezone.now()
    assert woken.queued_until > timezone.now()  # queued: the sweeper leaves it to its task
    assert send_pending(waiting) == ["sent"]
    assert waiting.deliveries.get().attempts == 2
    assert [r.json["event"] for r in receiver.requests].count("alarm.triggered") == 3


def test_a_message_refused_just_now_goes_five_seconds_after_its_attempt_once_others_are_accepted(
    settings, receiver, hook, raise_to
):
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # its backoff: 5 to 10 minutes
    refused = raise_to([(0, [hook])], key="refused")
    receiver.fail(500)
    send_pending(refused)
    attempted = refused.deliveries.get().updated_at

    assert send_pending(raise_to([(0, [hook])], key="door")) == ["sent"]
    assert send_pending(raise_to([(0, [hook])], key="gate")) == ["sent"]  # no second wake

    row = refused.deliveries.get()
    assert (row.status, row.next_attempt_at) == ("pending", attempted + timedelta(seconds=5))
    assert row.queued_until is None  # a countdown task holds it


def test_a_message_its_provider_rate_limited_waits_out_the_time_it_was_given(
    receiver, hook, raise_to
):
    limited = raise_to([(0, [hook])], key="limited")
    receiver.fail(429, retry_after="600")
    send_pending(limited)
    attempted_a_minute_ago(limited.deliveries.get())

    assert send_pending(raise_to([(0, [hook])], key="door")) == ["sent"]

    row = limited.deliveries.get()
    assert row.status == "pending"
    assert row.next_attempt_at > timezone.now() + timedelta(minutes=9)


def test_the_last_allowed_attempt_gives_up(settings, receiver, hook, raise_to):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    alarm = raise_to([(0, [hook])])
    receiver.fail(500)
    receiver.fail(502)

    assert send_pending(alarm) == ["pending"]
    make_due(alarm.deliveries.get())
    assert send_pending(alarm) == ["failed"]

    event = alarm.events.get(kind=AlarmEvent.Kind.DELIVERY_FAILED)
    assert "after 2 attempts: HTTP 502" in event.text


@pytest.mark.parametrize("status", [400, 410])
def test_a_refusal_is_permanent(receiver, hook, raise_to, status):
    alarm = raise_to([(0, [hook])])
    receiver.fail(status, body={"error": "gone"})

    assert send_pending(alarm) == ["failed"]

    failed = alarm.deliveries.get()
    assert (failed.attempts, failed.next_attempt_at) == (1, None)
    assert failed.error == f'HTTP {status}: {{"error": "gone"}}'
    event = alarm.events.get(kind=AlarmEvent.Kind.DELIVERY_FAILED)
    assert "after a permanent error" in event.text
    assert len(receiver.requests) == 1


def test_a_redirect_is_not_followed_and_counts_as_a_refusal(provider, raise_to):
    provider.route("POST", "/old", lambda r, m: Answer(301, b"", {"Location": "/elsewhere"}))
    moved = NotificationChannel.objects.create(
        kind="webhook", name="Moved", config={"url": provider.url + "/old", "secret": SECRET}
    )

    assert send_pending(raise_to([(0, [moved])])) == ["failed"]
    assert [r.path for r in provider.requests] == ["/old"]


# --- secrets ------------------------------------------------------------------------------

HEADER_SECRETS = {"Authorization": "Bearer hdr-token-4f9a2c", "X-Tenant-Key": "tenant-key-77b1"}


def test_custom_headers_are_sent_but_never_stored_or_logged(caplog, provider, raise_to):
    caplog.set_level(logging.DEBUG)

    def echo(request, match):
        # A receiver that echoes what it got, as many error pages do.
        status = 200 if request.json["event"] == "alarm.triggered" else 400
        return Answer(status, {"headers": request.headers})

    provider.route("POST", HOOK_PATH, echo)
    channel = NotificationChannel.objects.create(
        kind="webhook", name="With headers",
        config={"url": provider.url + HOOK_PATH, "secret": SECRET, "headers": HEADER_SECRETS},
    )  # fmt: skip
    alarm = raise_to([(0, [channel])])
    send_pending(alarm)
    lifecycle.acknowledge(alarm.pk, Actor("Carol"))
    assert send_pending(alarm) == ["failed"]  # the echo of a 400 lands in `error`

    got = provider.requests[0].headers
    assert (got["authorization"], got["x-tenant-key"]) == tuple(HEADER_SECRETS.values())
    stored = [
        " ".join([d.address, d.message, d.response, d.error, d.provider_message_id])
        for d in alarm.deliveries.all()
    ] + [f"{e.text} {e.actor} {e.detail}" for e in alarm.events.all()]
    assert "***" in " ".join(stored)  # the echoed values were there, and were replaced
    for secret in [*HEADER_SECRETS.values(), SECRET]:
        assert not [text for text in stored if secret in text]
        assert secret not in caplog.text


def test_a_header_value_the_http_library_refuses_never_reaches_the_audit(provider, raise_to):
    channel = NotificationChannel.objects.create(
        kind="webhook", name="Bad header",
        config={"url": provider.url + HOOK_PATH, "headers": {"Authorization": "Bearer tok-9d8e\n"}},
    )  # fmt: skip
    alarm = raise_to([(0, [channel])])

    assert send_pending(alarm) == ["failed"]  # a configuration error: retrying cannot help
    assert "tok-9d8e" not in alarm.deliveries.get().error


# --- the guide ----------------------------------------------------------------------------


def test_the_guide_lists_every_channel_kinds_config_keys():
    rows = re.findall(r"^\| (`\w+`)? *\| `(\w+)` \|", GUIDE.read_text(), re.M)
    documented, kind = set(), None
    for kind_cell, key in rows:
        kind = kind_cell.strip("`") or kind
        documented.add((kind, key))

    assert documented == {
        (kind, spec.name) for kind in CHANNEL_KINDS for spec in transport_class(kind).config_fields
    }
