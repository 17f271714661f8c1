"""A message's ACK link reaches its recipient, yet its token is on no Delivery row: not in the
stored message, nor in a provider's answer or error echoing the message back, in whatever
form it came (plain, URL-encoded, JSON with escaped slashes)."""

import json
import re
from email import message_from_bytes
from email import policy as email_policy
from urllib.parse import unquote_plus, urlencode

import pytest

from alarms import engine, lifecycle
from alarms.models import AlarmEvent
from alarms.timeline import SYSTEM
from notifications.models import Delivery, NotificationChannel
from notifications.tests.steps import send_pending

from .fake_provider import Answer

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"/a/([A-Za-z0-9_-]{32})")
PHONE = "+4915123456789"


def echo_json(request, match) -> Answer:
    """A JSON API answering with what it took, as PHP's json_encode writes it (`\\/`)."""
    body = {"id": 17, "number": "1001", "sid": "SM1", "timestamp": "17", "echo": request.json}
    return Answer(200, json.dumps(body).replace("/", "\\/").encode())


def echo_raw(request, match) -> Answer:
    """A gateway answering with the form or query it took, URL-encoded."""
    return Answer(200, request.body or urlencode(request.query).encode())


# kind -> (config given the provider's URL, whether it reaches a person's phone (else: a
# channel posted to), the provider's answer)
KINDS = {
    "sms_http json": ({"format": "json"}, "sms", echo_json),
    "sms_http form": ({"format": "form"}, "sms", echo_raw),
    "sms_http query": ({"format": "query", "method": "GET"}, "sms", echo_raw),
    "twilio": ({}, "sms", echo_raw),
    "signal": ({}, "signal", echo_json),
    "zammad": ({}, None, echo_json),
    "slack": ({}, None, echo_json),
    "teams": ({}, None, echo_json),
    "discord": ({}, None, echo_json),
}


def config_for(kind: str, url: str, extra: dict) -> dict:
    base = kind.split()[0]
    return {
        "sms_http": {"url": url + "/send", **extra},
        "twilio": {"account_sid": "AC1", "auth_token": "twilio-secret", "from": "+14155550100",
                   "base_url": url},
        "signal": {"url": url, "number": "+4930901820"},
        "zammad": {"url": url, "token": "zammad-secret", "customer": "alarms@example.org"},
        "slack": {"url": url + "/services/T1/B2/hook"},
        "teams": {"url": url + "/workflows/hook"},
        "discord": {"url": url + "/api/webhooks/1/hook"},
    }[base]  # fmt: skip


@pytest.fixture
def raise_through(make_policy, make_device, make_person):
    """Raise an alarm whose one step reaches Alice by this method or posts to this channel."""

    def raise_(channel, method=None):
        alice = make_person("Alice", phone=PHONE, signal_number=PHONE)
        steps = [(0, [alice], [])] if method else [(0, [], [channel])]
        policy = make_policy(steps)
        policy.steps.update(methods=[method or "email"])
        device, _ = make_device(default_policy=policy)
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key="desk-1", title="Emergency key pressed", device=device,
            actor=SYSTEM,
        ).alarm  # fmt: skip
        assert engine.run_due_step(alarm.pk)
        return alarm

    return raise_


def tokens_in(text: str) -> set[str]:
    return set(TOKEN.findall(unquote_plus(text).replace("\\/", "/")))


def assert_stored_nowhere(token: str) -> None:
    rows = list(Delivery.objects.values_list("message", "response", "error"))
    assert rows and all(token not in value for row in rows for value in row)
    events = AlarmEvent.objects.values_list("text", "detail")
    assert all(token not in text + json.dumps(detail) for text, detail in events)


@pytest.mark.parametrize("kind", KINDS)
def test_the_token_reaches_the_recipient_and_no_delivery_row(
    settings, provider, raise_through, kind
):
    extra, method, answer = KINDS[kind]
    provider.route("POST", r"/.*", answer)
    provider.route("GET", r"/.*", answer)
    channel = NotificationChannel.objects.create(
        kind=kind.split()[0], name=kind, config=config_for(kind, provider.url, extra)
    )
    alarm = raise_through(channel, method)

    assert send_pending(alarm) == ["sent"]

    (request,) = provider.requests
    (token,) = tokens_in(request.body.decode() + "?" + urlencode(request.query))
    assert Delivery.objects.get().response  # the provider's echo, kept
    assert_stored_nowhere(token)


def test_a_refusal_echoing_the_message_stores_no_token(settings, provider, raise_through):
    provider.route("POST", r"/send", lambda request, match: Answer(400, request.body))
    channel = NotificationChannel.objects.create(
        kind="sms_http", name="Gateway", config={"url": provider.url + "/send", "format": "form"}
    )
    alarm = raise_through(channel, "sms")

    assert send_pending(alarm) == ["failed"]

    (token,) = tokens_in(provider.requests[0].body.decode())
    assert Delivery.objects.get().error.startswith("HTTP 400")
    assert_stored_nowhere(token)


def test_an_answer_quoted_cut_off_inside_the_token_keeps_none_of_it(provider, raise_through):
    def without_ticket_id(request, match):
        """No ticket id; what it echoes starts so that Zammad's error quotes its first 200
        characters, the last 16 of them the token's first 16."""
        body = request.body.decode()
        return Answer(200, body[TOKEN.search(body).start() + 3 - (200 - 16) :])

    provider.route("POST", r"/api/v1/tickets", without_ticket_id)
    channel = NotificationChannel.objects.create(
        kind="zammad", name="Helpdesk", config=config_for("zammad", provider.url, {})
    )
    alarm = raise_through(channel)

    assert send_pending(alarm) == ["failed"]

    (token,) = tokens_in(provider.requests[0].body.decode())
    assert Delivery.objects.get().error.startswith("Zammad answered without a ticket id")
    assert_stored_nowhere(token[:16])


def test_an_email_carries_the_token_in_both_parts_and_its_row_in_neither(
    settings, smtp_server, raise_through
):
    alarm = raise_through(None, "email")

    assert send_pending(alarm) == ["sent"]

    mail = message_from_bytes(smtp_server.messages[0].content, policy=email_policy.default)
    bodies = [part.get_content() for part in mail.walk() if not part.is_multipart()]
    assert len(bodies) == 2  # text and HTML
    (token,) = set.union(*(tokens_in(body) for body in bodies))
    assert all(token in body for body in bodies)
    assert_stored_nowhere(token)
