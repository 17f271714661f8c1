"""SMS (a generic HTTP gateway, Twilio) and Signal (signal-cli-rest-api), each against a real
local server that checks what the provider checks and answers in its format.

Deliveries are driven as in production: an alarm raised through `lifecycle.raise_alarm`, its
first step run by the engine, then `sending.attempt` called synchronously. The clock is the
database: a retry is made due by moving `next_attempt_at` into the past, never by sleeping.
"""

import base64
import json
import logging
import re
import time
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from alarms.models import AlarmEvent
from conftest import wait_until
from devices.models import Device
from notifications.delivery import sample_sends, sending, targets
from notifications.messages import REDACTED_LINK
from notifications.models import Delivery, NotificationChannel
from notifications.tests.steps import make_channel, make_due
from notifications.tests.steps import send_only as send

from .fake_provider import Answer

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "3f9a1c7e5b2d4c6f8a0b1c2d3e4f5a6b"
AUTH_TOKEN = "9f3c1a7e5b2d4c6f8a0b1c2d3e4f5a6b"
TWILIO_FROM = "+14155550100"
SIGNAL_SENDER = "+4930901820"
SIGNAL_PROXY_TOKEN = "Bearer sig-proxy-7d1e0c55a9"
GATEWAY_KEY = "gw-key-61c4b0a8e2"
GATEWAY_HEADER_KEY = "gw-header-93f0d2"
ALICE_PHONE = "+4915123456789"
ALICE_SIGNAL = "+4917612345678"
ACK_URL = re.compile(r"http://127\.0\.0\.1:8000/a/[A-Za-z0-9_\-]{20,}")
SECRETS = (AUTH_TOKEN, SIGNAL_PROXY_TOKEN, GATEWAY_KEY, GATEWAY_HEADER_KEY)


# --- the providers -------------------------------------------------------------------------


def twilio_error(status: int, code: int, message: str, **headers) -> Answer:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Answer(status, body, headers)


def basic_auth(request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme != "Basic":
        return None
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    return user, password


def twilio_messages(request, match) -> Answer:
    """POST /2010-04-01/Accounts/{AccountSid}/Messages.json as Twilio answers it."""
    if match["sid"] != ACCOUNT_SID or basic_auth(request) != (ACCOUNT_SID, AUTH_TOKEN):
        return twilio_error(
            401, 20003, "Authenticate", **{"WWW-Authenticate": 'Basic realm="Twilio API"'}
        )
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return twilio_error(400, 20001, "Invalid content type")
    form = request.form
    to, body = form.get("To", ""), form.get("Body", "")
    if not re.fullmatch(r"\+[1-9]\d{6,14}", to):
        return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if to == "+12025550143":
        return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return twilio_error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
    if not body:
        return twilio_error(400, 21602, "Message body is required.")
    if len(body) > 1600:
        return twilio_error(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    sid = "SM" + uuid.uuid4().hex
    now = "Thu, 24 Aug 2023 05:01:45 +0000"
    return Answer(
        201,
        {
            "account_sid": ACCOUNT_SID,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if form.get("MessagingServiceSid") else "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
        },
    )


@pytest.fixture
def twilio_api(provider):
    """Twilio's Messages API; `provider.created` holds the message resources it answered."""
    provider.created = []

    def messages(request, match) -> Answer:
        answer = twilio_messages(request, match)
        if answer.status == 201:
            provider.created.append(answer.body)
        return answer

    provider.route("POST", r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json", messages)
    return provider


@pytest.fixture
def signal_api(provider):
    """signal-cli-rest-api's POST /v2/send, behind a proxy that wants a bearer token."""

    def send(request, match) -> Answer:
        if request.headers.get("authorization") != SIGNAL_PROXY_TOKEN:
            return Answer(401, {"error": "Unauthorized"})
        if request.headers.get("content-type") != "application/json":
            return Answer(400, {"error": "Couldn't process request - invalid request"})
        try:
            body = request.json
        except ValueError:
            return Answer(400, {"error": "Couldn't process request - invalid request"})
        if body.get("number") != SIGNAL_SENDER:
            return Answer(400, {"error": f"User {body.get('number')} is not registered."})
        recipients = body.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            return Answer(
                400, {"error": "Couldn't process request - please provide at least one recipient"}
            )
        if not isinstance(body.get("message"), str) or not body["message"]:
            return Answer(400, {"error": "Couldn't process request - message is empty"})
        return Answer(201, {"timestamp": str(int(time.time() * 1000))})

    provider.route("POST", r"/v2/send", send)
    return provider


@pytest.fixture
def sms_gateway(provider):
    """A typical HTTP SMS gateway: an API key in the query string or a header, parameters as
    JSON, a form or a query string, and the message id in its JSON answer."""

    def sms(request, match) -> Answer:
        key = request.query.get("key") or request.headers.get("x-api-key")
        if key not in (GATEWAY_KEY, GATEWAY_HEADER_KEY):
            # Gateways like to repeat the bad key back: it must not end up stored.
            return Answer(401, {"error": f"invalid api key {key}"})
        content_type = request.headers.get("content-type", "")
        if request.method == "GET":
            params = {k: v for k, v in request.query.items() if k != "key"}
        elif content_type == "application/json":
            params = request.json
        elif content_type == "application/x-www-form-urlencoded":
            params = request.form
        else:
            return Answer(415, {"error": f"unsupported content type {content_type}"})
        if not params.get("to") or not params.get("text"):
            return Answer(400, {"error": "to and text are required"})
        return Answer(
            200, {"messages": [{"id": f"gw-{len(provider.requests)}", "to": params["to"]}]}
        )

    provider.route("POST", r"/api/sms", sms)
    provider.route("GET", r"/api/sms", sms)
    return provider


# --- channels, alarms, deliveries ---------------------------------------------------------------


def twilio_channel(provider, **config) -> NotificationChannel:
    config = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": TWILIO_FROM,
        "base_url": provider.url,
        **config,
    }
    return make_channel("twilio", **{k: v for k, v in config.items() if v is not None})


def signal_channel(provider, **config) -> NotificationChannel:
    config = {
        "url": provider.url,
        "number": SIGNAL_SENDER,
        "headers": {"Authorization": SIGNAL_PROXY_TOKEN},
        **config,
    }
    return make_channel("signal", **config)


def gateway_channel(provider, **config) -> NotificationChannel:
    return make_channel(
        "sms_http", **{"url": f"{provider.url}/api/sms?key={GATEWAY_KEY}", **config}
    )


@pytest.fixture
def phone_person(make_person):
    return make_person("Alice", phone=ALICE_PHONE, signal_number=ALICE_SIGNAL)


def only_delivery(alarm) -> Delivery:
    (row,) = Delivery.objects.filter(alarm=alarm)
    return row


def seconds_until(row: Delivery) -> float:
    return (row.next_attempt_at - timezone.now()).total_seconds()


def kinds(alarm) -> list[str]:
    return list(alarm.events.values_list("kind", flat=True))


def everything_stored(alarm) -> str:
    """Every text the database keeps about the alarm's deliveries."""
    texts = []
    text_fields = (models.CharField, models.TextField)
    fields = [f for f in Delivery._meta.concrete_fields if isinstance(f, text_fields)]
    for row in Delivery.objects.filter(alarm=alarm):
        texts += [str(getattr(row, f.attname)) for f in fields]
    for event in AlarmEvent.objects.filter(alarm=alarm):
        texts += [event.text, json.dumps(event.detail)]
    alarm.refresh_from_db()
    texts.append(json.dumps(alarm.external_refs))
    return "\n".join(texts)


def assert_no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    # Basic auth on the wire is base64 of sid:token; it must not be written down either.
    assert base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode() not in text


# --- Twilio -------------------------------------------------------------------------------------


def test_twilio_texts_the_persons_phone_with_a_form_post_and_basic_auth(
    twilio_api, raise_alarm, phone_person
):
    channel = twilio_channel(twilio_api)
    alarm = raise_alarm([phone_person])

    row = send(alarm)

    (request,) = twilio_api.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    form = request.form
    assert set(form) == {"To", "From", "Body"}
    assert (form["To"], form["From"]) == (ALICE_PHONE, TWILIO_FROM)
    assert form["Body"].startswith("CRITICAL Emergency key pressed @ Clinic North / Reception")
    assert ACK_URL.search(form["Body"]), "the SMS carries Alice's ACK link"
    (created,) = twilio_api.created
    assert (row.status, row.attempts, row.provider_status) == ("sent", 1, "HTTP 201")
    assert row.provider_message_id == created["sid"]
    assert re.fullmatch(r"SM[0-9a-f]{32}", row.provider_message_id)
    assert created["status"] == "queued"
    answer = ACK_URL.sub(REDACTED_LINK, json.dumps(created))  # it echoes the message
    assert row.response == answer[:500], "the answer, without the ACK link, cut to 500 characters"
    assert row.latency_ms is not None and row.latency_ms < 5000
    assert (row.person, row.channel, row.method, row.address) == (
        phone_person, channel, "sms", ALICE_PHONE,
    )  # fmt: skip
    assert row.error == "" and row.next_attempt_at is None and row.sent_at is not None
    sent_event = alarm.events.get(kind="delivery_sent")
    assert sent_event.text == f"Sent to Alice by sms ({ALICE_PHONE}): HTTP 201"


def test_twilio_uses_the_messaging_service_instead_of_a_from_number(
    twilio_api, raise_alarm, phone_person
):
    twilio_channel(twilio_api, **{"from": None, "messaging_service_sid": "MG" + "a" * 32})
    alarm = raise_alarm([phone_person])

    row = send(alarm)

    form = twilio_api.requests[0].form
    assert form["MessagingServiceSid"] == "MG" + "a" * 32
    assert "From" not in form
    assert row.status == "sent"
    assert twilio_api.created[0]["status"] == "accepted"
    assert row.provider_message_id == twilio_api.created[0]["sid"]


def test_twilio_body_is_cut_to_twilios_1600_character_limit(twilio_api, raise_alarm, phone_person):
    channel = twilio_channel(twilio_api)
    NotificationChannel.objects.filter(pk=channel.pk).update(body_template="{{ alarm.message }}")
    alarm = raise_alarm([phone_person], message="Water leak " + "x" * 2000)

    row = send(alarm)

    assert row.status == "sent"
    assert len(twilio_api.requests[0].form["Body"]) == 1600


def test_twilio_bad_credentials_fail_at_once_and_show_on_the_timeline(
    twilio_api, raise_alarm, phone_person
):
    twilio_channel(twilio_api, auth_token="0" * 32)
    alarm = raise_alarm([phone_person])

    row = send(alarm)

    assert (row.status, row.attempts, row.provider_status) == ("failed", 1, "HTTP 401")
    assert row.next_attempt_at is None
    assert '"code": 20003' in row.error and "Authenticate" in row.error
    failed = alarm.events.get(kind="delivery_failed")
    assert failed.text.startswith("Failed to reach Alice by sms (step 1) after a permanent error")
    assert "HTTP 401" in failed.text
    assert failed.detail == {"delivery_id": row.pk}
    assert sending.attempt(row.pk) is None, "a failed delivery is not tried again"
    assert len(twilio_api.requests) == 1


def test_twilio_refusing_the_recipient_is_permanent(twilio_api, raise_alarm, make_person):
    twilio_channel(twilio_api)
    unsubscribed = make_person("Bob", phone="+12025550143")
    alarm = raise_alarm([unsubscribed])

    row = send(alarm)

    assert (row.status, row.provider_status) == ("failed", "HTTP 400")
    assert "21610" in row.error and "unsubscribed" in row.error
    assert "delivery_failed" in kinds(alarm)


def test_a_5xx_is_retried_with_backoff_and_sent_on_the_next_attempt(
    twilio_api, raise_alarm, phone_person, settings
):
    settings.DELIVERY_RETRY_BASE_SECONDS = 10
    twilio_channel(twilio_api)
    alarm = raise_alarm([phone_person])
    twilio_api.fail(500, body={"code": 20500, "message": "Internal Server Error"})

    row = send(alarm)

    assert (row.status, row.attempts, row.provider_status) == ("pending", 1, "HTTP 500")
    assert 4 <= seconds_until(row) <= 10, "first backoff is between half and all of the base"
    assert "20500" in row.error
    assert "delivery_failed" not in kinds(alarm)
    assert sending.attempt(row.pk) is None, "not due yet"
    assert len(twilio_api.requests) == 1

    make_due(row)
    assert sending.attempt(row.pk) == "sent"

    row.refresh_from_db()
    assert (row.status, row.attempts, row.provider_status, row.error) == (
        "sent", 2, "HTTP 201", "",
    )  # fmt: skip
    assert len(twilio_api.requests) == 2
    assert twilio_api.requests[1].form["To"] == ALICE_PHONE


def test_backoff_grows_with_each_attempt_and_the_last_allowed_attempt_fails(
    twilio_api, raise_alarm, phone_person, settings
):
    settings.DELIVERY_RETRY_BASE_SECONDS = 10
    settings.DELIVERY_MAX_ATTEMPTS = 3
    twilio_channel(twilio_api)
    alarm = raise_alarm([phone_person])
    for _ in range(3):
        twilio_api.fail(503)

    row = send(alarm)
    assert 4 <= seconds_until(row) <= 10
    make_due(row)
    sending.attempt(row.pk)
    row.refresh_from_db()
    assert row.status == "pending" and 9 <= seconds_until(row) <= 20
    make_due(row)
    sending.attempt(row.pk)
    row.refresh_from_db()

    assert (row.status, row.attempts, row.provider_status) == ("failed", 3, "HTTP 503")
    assert row.next_attempt_at is None
    failed = alarm.events.get(kind="delivery_failed")
    assert "after 3 attempts" in failed.text


def test_a_429_waits_at_least_as_long_as_retry_after_says(
    twilio_api, raise_alarm, phone_person, settings
):
    settings.DELIVERY_RETRY_BASE_SECONDS = 1
    twilio_channel(twilio_api)
    alarm = raise_alarm([phone_person])
    twilio_api.fail(429, body={"code": 20429, "message": "Too Many Requests"}, retry_after="120")

    row = send(alarm)

    assert (row.status, row.attempts, row.provider_status) == ("pending", 1, "HTTP 429")
    assert seconds_until(row) >= 119
    assert seconds_until(row) <= 125


def test_a_timeout_is_transient(twilio_api, raise_alarm, phone_person, settings):
    settings.DELIVERY_TIMEOUT_SECONDS = 0.5
    twilio_channel(twilio_api)
    alarm = raise_alarm([phone_person])
    twilio_api.fail(201, delay=1.5)

    started = time.monotonic()
    row = send(alarm)

    assert time.monotonic() - started < 1.4, "the call gave up at the timeout"
    assert (row.status, row.attempts, row.provider_status) == ("pending", 1, "")
    assert row.error == "timed out after 0.5s"
    assert row.latency_ms >= 450
    assert seconds_until(row) > 0
    assert "delivery_failed" not in kinds(alarm)


def test_a_refused_connection_is_transient(raise_alarm, phone_person):
    make_channel(
        "twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **{"from": TWILIO_FROM},
        base_url="http://127.0.0.1:9",
    )  # fmt: skip
    alarm = raise_alarm([phone_person])

    row = send(alarm)

    assert (row.status, row.attempts) == ("pending", 1)
    assert row.error.startswith("connection failed: ConnectionError")


# --- Signal -------------------------------------------------------------------------------------


def test_signal_posts_json_to_v2_send_for_the_persons_signal_number(
    signal_api, raise_alarm, phone_person
):
    channel = signal_channel(signal_api)
    alarm = raise_alarm([phone_person], methods=["signal"])

    row = send(alarm)

    (request,) = signal_api.requests
    assert (request.method, request.path) == ("POST", "/v2/send")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == SIGNAL_PROXY_TOKEN
    body = request.json
    assert set(body) == {"message", "number", "recipients"}
    assert body["number"] == SIGNAL_SENDER
    assert body["recipients"] == [ALICE_SIGNAL], "Signal goes to signal_number, not phone"
    assert "ALARM: Emergency key pressed" in body["message"]
    assert ACK_URL.search(body["message"])
    assert (row.status, row.attempts, row.provider_status) == ("sent", 1, "HTTP 201")
    assert row.provider_message_id == json.loads(row.response)["timestamp"]
    assert row.provider_message_id.isdigit()
    assert row.latency_ms is not None
    assert (row.method, row.channel, row.address) == ("signal", channel, ALICE_SIGNAL)


def test_signal_unregistered_sender_fails_at_once(signal_api, raise_alarm, phone_person):
    signal_channel(signal_api, number="+4930901821")
    alarm = raise_alarm([phone_person], methods=["signal"])

    row = send(alarm)

    assert (row.status, row.attempts, row.provider_status) == ("failed", 1, "HTTP 400")
    assert "User +4930901821 is not registered." in row.error
    assert "delivery_failed" in kinds(alarm)


def test_signal_without_the_proxy_token_fails_at_once(signal_api, raise_alarm, phone_person):
    signal_channel(signal_api, headers={})
    alarm = raise_alarm([phone_person], methods=["signal"])

    row = send(alarm)

    assert (row.status, row.provider_status) == ("failed", "HTTP 401")
    assert "Unauthorized" in row.error


def test_a_person_without_a_signal_number_is_not_sent_signal(signal_api, raise_alarm, make_person):
    signal_channel(signal_api)
    phone_only = make_person("Carol", phone=ALICE_PHONE)

    alarm = raise_alarm([phone_only], methods=["signal"])

    assert not Delivery.objects.filter(alarm=alarm).exists()
    assert "step_skipped" in kinds(alarm)
    assert signal_api.requests == []


# --- the generic HTTP gateway -------------------------------------------------------------------


PARAMS = {
    "to": "{to}",
    "text": "{text}",
    "subject": "{subject}",
    "priority": "{severity}",
    "reference": "alarm-{alarm_id}",
    "sender": "Alarms",
}


def test_gateway_json_format_fills_every_placeholder(sms_gateway, raise_alarm, phone_person):
    gateway_channel(sms_gateway, params=PARAMS, message_id_field="messages.0.id")
    alarm = raise_alarm([phone_person], severity="high")

    row = send(alarm)

    (request,) = sms_gateway.requests
    assert (request.method, request.path) == ("POST", "/api/sms")
    assert request.query == {"key": GATEWAY_KEY}
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert set(body) == set(PARAMS)
    assert body["to"] == ALICE_PHONE
    assert body["text"].startswith("HIGH Emergency key pressed @ Clinic North / Reception")
    assert ACK_URL.search(body["text"])
    assert body["subject"] == "[HIGH] Emergency key pressed — Clinic North / Reception"
    assert body["priority"] == "high"
    assert body["reference"] == f"alarm-{alarm.pk}"
    assert body["sender"] == "Alarms"
    assert (row.status, row.provider_status, row.provider_message_id) == (
        "sent",
        "HTTP 200",
        "gw-1",
    )


def test_gateway_form_format_keeps_text_with_form_syntax_intact(
    sms_gateway, raise_alarm, phone_person
):
    gateway_channel(sms_gateway, format="form", params={"to": "{to}", "text": "{text}"})
    title = "Smoke=yes+fire; 100% #B2 ?x=1 {to} {text}"
    alarm = raise_alarm([phone_person], title=title)

    row = send(alarm)

    (request,) = sms_gateway.requests
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert set(request.form) == {"to", "text"}
    assert request.form["to"] == ALICE_PHONE
    assert title in request.form["text"], "alarm text is encoded, never spliced into syntax"
    assert row.status == "sent"
    assert row.provider_message_id == "", "no message_id_field configured"


def test_gateway_query_format_sends_a_get_with_header_auth(sms_gateway, raise_alarm, phone_person):
    gateway_channel(
        sms_gateway, url=f"{sms_gateway.url}/api/sms", method="GET", format="query",
        headers={"X-Api-Key": GATEWAY_HEADER_KEY}, message_id_field="messages.0.id",
    )  # fmt: skip
    alarm = raise_alarm([phone_person], title="Door forced+open=1#2")

    row = send(alarm)

    (request,) = sms_gateway.requests
    assert (request.method, request.body) == ("GET", b"")
    assert request.headers["x-api-key"] == GATEWAY_HEADER_KEY
    assert set(request.query) == {"to", "text"}
    assert request.query["to"] == ALICE_PHONE
    assert "Door forced+open=1#2" in request.query["text"]
    assert (row.status, row.provider_message_id) == ("sent", "gw-1")


def test_sms_text_carries_alarm_text_as_is_not_html_escaped(sms_gateway, raise_alarm, phone_person):
    gateway_channel(sms_gateway)
    title = 'Fire "B" & <smoke> in 2\'s room'
    alarm = raise_alarm([phone_person], title=title)

    send(alarm)

    assert sms_gateway.requests[0].json["text"].startswith(f"CRITICAL {title} @ Clinic North")


def test_gateway_bad_key_fails_at_once_without_storing_the_key(
    sms_gateway, raise_alarm, phone_person
):
    gateway_channel(sms_gateway, url=f"{sms_gateway.url}/api/sms?key=gw-key-61c4b0a8e3")
    alarm = raise_alarm([phone_person])

    row = send(alarm)

    assert (row.status, row.provider_status) == ("failed", "HTTP 401")
    assert "invalid api key ***" in row.error
    assert "gw-key-61c4b0a8e3" not in everything_stored(alarm)


def test_a_channel_saved_without_validation_still_gets_its_defaults(
    sms_gateway, raise_alarm, phone_person
):
    NotificationChannel.objects.create(
        kind="sms_http", name="raw", config={"url": f"{sms_gateway.url}/api/sms?key={GATEWAY_KEY}"}
    )
    alarm = raise_alarm([phone_person])

    row = send(alarm)

    assert row.status == "sent", row.error
    assert sms_gateway.requests[0].json["to"] == ALICE_PHONE


# --- secrets ------------------------------------------------------------------------------------


def _twilio(provider):
    twilio_channel(provider)
    return ["sms"]


def _signal(provider):
    signal_channel(provider)
    return ["signal"]


def _gateway(provider):
    gateway_channel(
        provider, url=f"{provider.url}/api/sms", headers={"X-Api-Key": GATEWAY_HEADER_KEY}
    )
    return ["sms"]


def _echo_secrets(request, match) -> Answer:
    """A provider that repeats the request's headers, configured credentials included, in a
    400 (the Basic header is left out: requests derives it, the config never holds it)."""
    headers = {k: v for k, v in request.headers.items() if not v.startswith("Basic ")}
    return Answer(400, {"error": json.dumps({"path": request.path, "headers": headers})})


@pytest.mark.parametrize(
    "setup", [_twilio, _signal, _gateway], ids=["twilio", "signal", "sms_http"]
)
@pytest.mark.parametrize("answer", ["ok", "500", "timeout", "echo"])
def test_secrets_are_never_stored_nor_logged(
    provider, twilio_api, signal_api, sms_gateway, raise_alarm, phone_person, caplog, settings,
    setup, answer,
):  # fmt: skip
    settings.DELIVERY_TIMEOUT_SECONDS = 0.3
    caplog.set_level(logging.DEBUG)
    methods = setup(provider)
    if answer == "500":
        provider.fail(500, body="upstream broke")
    elif answer == "timeout":
        provider.fail(201, delay=0.8)
    elif answer == "echo":
        provider.routes.insert(0, ("POST", re.compile(".*"), _echo_secrets))
        provider.routes.insert(0, ("GET", re.compile(".*"), _echo_secrets))
    alarm = raise_alarm([phone_person], methods=methods)

    row = send(alarm)

    expected = {"ok": "sent", "500": "pending", "timeout": "pending", "echo": "failed"}[answer]
    assert row.status == expected, row.error
    if answer == "echo" and setup is not _twilio:
        assert "***" in row.error, "the echoed credentials were redacted"
    assert_no_secret_in(everything_stored(alarm))
    assert_no_secret_in(caplog.text)


def test_a_secret_url_never_reaches_the_logs(sms_gateway, raise_alarm, phone_person, caplog):
    caplog.set_level(logging.DEBUG)
    gateway_channel(sms_gateway)
    alarm = raise_alarm([phone_person])

    row = send(alarm)

    assert row.status == "sent"
    assert GATEWAY_KEY not in everything_stored(alarm)
    assert GATEWAY_KEY not in caplog.text


def test_a_secret_url_is_redacted_from_connection_errors(raise_alarm, phone_person):
    make_channel("sms_http", url=f"http://127.0.0.1:9/api/sms?key={GATEWAY_KEY}")
    alarm = raise_alarm([phone_person])

    row = send(alarm)

    assert row.status == "pending"
    assert "Max retries exceeded with url: ***" in row.error
    assert GATEWAY_KEY not in everything_stored(alarm)


def test_admin_test_message_answers_without_revealing_secrets(sms_gateway, phone_person):
    gateway_channel(sms_gateway, url=f"{sms_gateway.url}/api/sms", headers={"X-Api-Key": "bad0"})

    results = sample_sends.send_test(person=phone_person)

    ((what, answer, ok),) = [r for r in results if r[0].startswith("SMS")]
    assert (what, ok) == (f"SMS to {ALICE_PHONE}", False)
    assert answer == 'HTTP 401: {"error": "invalid api key ***"}'
    assert not Delivery.objects.exists(), "a test message is not stored"


def test_admin_test_message_reaches_the_person_through_the_gateway(twilio_api, phone_person):
    twilio_channel(twilio_api)

    results = sample_sends.send_test(person=phone_person)

    ((what, answer, ok),) = [r for r in results if r[0].startswith("SMS")]
    assert (what, ok) == (f"SMS to {ALICE_PHONE}", True)
    assert answer.startswith(f"HTTP 201 id {twilio_api.created[0]['sid']}")
    assert AUTH_TOKEN not in answer
    body = twilio_api.requests[0].form["Body"]
    assert body.startswith("TEST: CRITICAL Test message")


# --- routing people through the gateway ---------------------------------------------------------


def test_sms_to_a_person_goes_through_the_first_enabled_gateway_by_name(
    twilio_api, sms_gateway, raise_alarm, phone_person, make_person
):
    make_channel(
        "twilio", "A disabled Twilio", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN,
        **{"from": TWILIO_FROM}, base_url="http://127.0.0.1:9",
    )  # fmt: skip
    NotificationChannel.objects.filter(name="A disabled Twilio").update(enabled=False)
    used = twilio_channel(twilio_api, name="B Twilio")
    gateway_channel(sms_gateway, name="C gateway")
    signal_channel(twilio_api, name="0 Signal")  # first by name, but it carries Signal only
    no_phone = make_person("Dave")

    alarm = raise_alarm([phone_person, no_phone])

    row = only_delivery(alarm)
    assert (row.person, row.channel, row.address) == (phone_person, used, ALICE_PHONE)
    sending.attempt(row.pk)
    assert [r.path for r in twilio_api.requests] == [
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    ]


def test_gateway_for_picks_the_kind_that_reaches_the_method(provider):
    twilio = twilio_channel(provider)
    signal = signal_channel(provider)

    assert targets.gateway_for("sms") == twilio
    assert targets.gateway_for("signal") == signal
    assert targets.gateway_for("email") is None


@pytest.mark.parametrize("gateway", ["disabled", "none"])
def test_without_an_enabled_gateway_nobody_is_texted(provider, raise_alarm, phone_person, gateway):
    if gateway == "disabled":
        twilio_channel(provider, name="Off")
        NotificationChannel.objects.update(enabled=False)

    alarm = raise_alarm([phone_person], methods=["sms"])

    assert not Delivery.objects.filter(alarm=alarm).exists()
    skipped = alarm.events.get(kind="step_skipped")
    assert "nobody to notify" in skipped.text
    assert provider.requests == []


def test_sms_and_email_methods_make_one_delivery_each(
    twilio_api, raise_alarm, phone_person, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    twilio_channel(twilio_api)

    alarm = raise_alarm([phone_person], methods=["email", "sms"])

    rows = Delivery.objects.filter(alarm=alarm).order_by("method")
    assert [(r.method, r.address) for r in rows] == [
        ("email", "alice@example.org"), ("sms", ALICE_PHONE),
    ]  # fmt: skip
    assert [r.channel for r in rows][0] is None


# --- a gateway kind as a step's channel, with its own `to` ---------------------------------------


def test_twilio_as_a_channel_texts_its_own_number(twilio_api, raise_alarm):
    channel = twilio_channel(twilio_api, name="Night desk", to="+14155550199")

    alarm = raise_alarm(channels=[channel])

    row = send(alarm)
    assert (row.person, row.channel, row.method, row.target) == (
        None, channel, "twilio", f"channel:{channel.pk}",
    )  # fmt: skip
    assert row.address == "+14155550199"
    assert twilio_api.requests[0].form["To"] == "+14155550199"
    assert ACK_URL.search(twilio_api.requests[0].form["Body"]), "the desk can acknowledge too"
    assert (row.status, row.provider_status) == ("sent", "HTTP 201")


@pytest.mark.parametrize("kind", ["sms_http", "signal"])
def test_sms_gateway_and_signal_as_a_channel_message_their_own_number(
    twilio_api, signal_api, sms_gateway, raise_alarm, kind
):
    if kind == "signal":
        channel = signal_channel(signal_api, name="Night desk", to="+14155550199")
    else:
        channel = gateway_channel(sms_gateway, name="Night desk", to="+14155550199")

    alarm = raise_alarm(channels=[channel])

    row = send(alarm)
    assert row.address == "+14155550199"
    request = twilio_api.requests[0]
    received = request.json["recipients"] if kind == "signal" else [request.json["to"]]
    assert received == ["+14155550199"]
    assert row.status == "sent"


# --- config validation --------------------------------------------------------------------------


TWILIO_OK = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from": TWILIO_FROM}
SIGNAL_OK = {"url": "http://signal.local:8080", "number": SIGNAL_SENDER}
GATEWAY_OK = {"url": "https://sms.example.com/send?key=abc"}


def config_errors(kind: str, config) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        NotificationChannel(kind=kind, name="x", config=config).full_clean()
    return caught.value.message_dict["config"]


@pytest.mark.parametrize(
    "kind, config, message",
    [
        ("twilio", {**TWILIO_OK, "account_sid": ""}, "'account_sid' is required."),
        ("twilio", {"account_sid": ACCOUNT_SID, "from": TWILIO_FROM}, "'auth_token' is required."),
        ("twilio", {**TWILIO_OK, "from": None}, "Set 'from' or 'messaging_service_sid'."),
        ("twilio", {**TWILIO_OK, "token": "x"}, "Unknown key(s): token. Known: account_sid,"),
        ("twilio", {**TWILIO_OK, "from": "030 1234567"}, "'from' must be a number in E.164 form."),
        ("twilio", {**TWILIO_OK, "from": "+4912"}, "'from' is not a valid phone number."),
        ("twilio", {**TWILIO_OK, "to": "+49 30 1"}, "'to' is not a valid phone number."),
        ("twilio", {**TWILIO_OK, "base_url": 42}, "'base_url' must be a string."),
        ("signal", {"number": SIGNAL_SENDER}, "'url' is required."),
        ("signal", {"url": SIGNAL_OK["url"]}, "'number' is required."),
        ("signal", {**SIGNAL_OK, "number": "12345"}, "'number' must be a number in E.164 form."),
        ("signal", {**SIGNAL_OK, "headers": {"X": 1}}, "'headers' must be an object of strings."),
        ("signal", {**SIGNAL_OK, "recipients": []}, "Unknown key(s): recipients."),
        ("sms_http", {}, "'url' is required."),
        ("sms_http", {**GATEWAY_OK, "format": "xml"}, "'format' must be one of json, form, query."),
        ("sms_http", {**GATEWAY_OK, "method": "DELETE"}, "'method' must be one of POST, GET, PUT."),
        ("sms_http", {**GATEWAY_OK, "params": ["to"]}, "'params' must be an object of strings."),
        ("sms_http", {**GATEWAY_OK, "to": "+1"}, "'to' must be a number in E.164 form."),
        ("sms_http", ["url"], "The config must be a JSON object."),
    ],
)
def test_config_validation_rejects_bad_settings_with_a_clear_message(kind, config, message):
    errors = config_errors(kind, config)

    assert any(error.startswith(message) for error in errors), errors


@pytest.mark.parametrize(
    "kind, config, key",
    [
        ("twilio", {**TWILIO_OK, "base_url": "ftp://api.twilio.com"}, "base_url"),
        ("signal", {**SIGNAL_OK, "url": "signal.local:8080"}, "url"),
        ("sms_http", {"url": "http://"}, "url"),
    ],
)
def test_a_bad_url_is_rejected_naming_its_key(kind, config, key):
    errors = config_errors(kind, config)

    assert any(f"'{key}'" in error for error in errors), errors


@pytest.mark.parametrize(
    "kind, config",
    [
        ("twilio", {**TWILIO_OK, "base_url": "ftp://api.twilio.com"}),
        ("signal", {**SIGNAL_OK, "url": "signal.local:8080"}),
        ("sms_http", {"url": "http://"}),
        ("sms_http", {"url": "javascript:alert(1)"}),
    ],
)
def test_a_bad_url_is_rejected(kind, config):
    assert config_errors(kind, config)


def test_a_valid_config_is_filled_with_defaults():
    channel = NotificationChannel(kind="sms_http", name="gw", config=dict(GATEWAY_OK))
    channel.full_clean()

    assert channel.config == {
        "url": GATEWAY_OK["url"],
        "method": "POST",
        "format": "json",
        "params": {"to": "{to}", "text": "{text}"},
        "headers": {},
        "message_id_field": "",
    }
    twilio = NotificationChannel(kind="twilio", name="tw", config=dict(TWILIO_OK))
    twilio.full_clean()
    assert twilio.config["base_url"] == "https://api.twilio.com"


# --- end to end ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_panic_button_press_over_http_ends_as_an_sms_at_twilio(
    client, celery_worker, twilio_api, make_person, make_policy, make_device
):
    alice = make_person("Alice", phone=ALICE_PHONE)
    policy = make_policy([(0, [alice], [])])
    policy.steps.update(methods=["sms"])
    twilio_channel(twilio_api)
    _, token = make_device("Panic button 3", kind=Device.Kind.GENERIC, default_policy=policy)

    response = client.post(
        "/v1/alarms/raise",
        {"dedup_key": "button-3", "title": "Panic button pressed", "severity": "critical"},
        content_type="application/json",
        headers={"authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.content

    def sent():
        """the SMS delivery is marked sent"""
        return Delivery.objects.filter(status="sent", method="sms").first()

    row = wait_until(sent, timeout=15)
    (request,) = twilio_api.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert request.form["To"] == ALICE_PHONE
    assert request.form["Body"].startswith("CRITICAL Panic button pressed @ Clinic North")
    assert ACK_URL.search(request.form["Body"])
    assert str(row.alarm_id) == response.json()["alarm_id"]
    assert row.provider_message_id == twilio_api.created[0]["sid"]
    assert (row.attempts, row.provider_status) == (1, "HTTP 201")
