"""Replies to SMS and Signal messages, from the provider's request to the alarm and the answer.

Each inbound path is driven as the provider drives it (Twilio's signed webhook, a gateway's
forward to its token URL, signal-cli-rest-api's receive API on a local server), then handled as
the worker handles it (`responders.tasks.handle`); answers go out to the local Twilio server.
"""

import re

import pytest
from django.utils import timezone
from twilio.request_validator import RequestValidator

from alarms import engine, lifecycle
from alarms.models import Alarm, AlarmEvent, Claim
from alarms.timeline import SYSTEM, Actor
from devices.models import Person
from notifications.models import Delivery, ReplyCode
from notifications.tests.fake_provider import Answer
from notifications.tests.steps import send_pending
from notifications.tests.test_sms_signal import signal_channel
from responders import signal_receive, tasks
from responders.models import Reply

from ..replies import UNKNOWN_REPLY
from .conftest import (
    ALICE_PHONE,
    ALICE_SIGNAL,
    AUTH_TOKEN,
    BOB_PHONE,
    inbound_sms,
    make_channel,
    sent_to,
    twilio_post,
)

pytestmark = pytest.mark.django_db


def reply(client, sender: str, body: str, **params) -> Reply:
    """An SMS from `sender` through Twilio's webhook, handled as the worker does."""
    response = twilio_post(client, {**inbound_sms(sender, body), **params})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    stored = Reply.objects.order_by("-id").first()
    tasks.handle(stored.pk)
    stored.refresh_from_db()
    return stored


# --- Twilio's webhook ---------------------------------------------------------------------


def test_every_sms_page_ends_with_what_to_reply(twilio_api, twilio, alice, page):
    page([alice])

    (body,) = sent_to(twilio_api, ALICE_PHONE)

    assert body.endswith("\nReply 1a to acknowledge, 1c to claim, 1r to resolve")


def test_a_signed_reply_acknowledges_and_is_answered(client, twilio_api, twilio, alice, page):
    alarm = page([alice])

    stored = reply(client, ALICE_PHONE, "1a")

    alarm.refresh_from_db()
    assert alarm.status == "acknowledged"
    assert alarm.acknowledged_by == "Alice by SMS reply 1a"
    assert stored.person == alice and stored.alarm_id == alarm.pk
    assert stored.outcome == "acknowledged"
    assert (
        sent_to(twilio_api, ALICE_PHONE)[-1] == "Acknowledged #1 Emergency key pressed: Reception"
    )
    assert stored.answered_at
    texts = list(alarm.events.filter(kind=AlarmEvent.Kind.REPLY).values_list("text", flat=True))
    assert texts == ["SMS reply from Alice: 1a"]


@pytest.mark.parametrize(
    "signature", ["", "bm90IGEgc2lnbmF0dXJl", "wrong token", "other url"], ids=str
)
def test_a_reply_without_twilios_signature_is_refused_and_not_stored(
    client, twilio, alice, page, signature
):
    alarm = page([alice])
    params = inbound_sms(ALICE_PHONE, "1a")
    if signature == "wrong token":
        response = twilio_post(client, params, token="f" * 32)
    elif signature == "other url":
        response = twilio_post(client, params, url="https://evil.example/v1/replies/twilio")
    else:
        response = client.post("/v1/replies/twilio", params, HTTP_X_TWILIO_SIGNATURE=signature)

    assert response.status_code == 403
    assert "signature" in response.json()["error"]
    assert not Reply.objects.exists()
    alarm.refresh_from_db()
    assert alarm.status == "triggered"


def test_a_signature_over_changed_parameters_is_refused(client, twilio, alice, page):
    page([alice])
    params = inbound_sms(ALICE_PHONE, "1a")

    url = "http://127.0.0.1:8000/v1/replies/twilio"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)

    response = client.post(
        "/v1/replies/twilio", {**params, "Body": "1r"}, HTTP_X_TWILIO_SIGNATURE=signature
    )

    assert response.status_code == 403


def test_twilio_delivering_a_reply_twice_acts_once(client, twilio_api, twilio, alice, page):
    page([alice])
    params = inbound_sms(ALICE_PHONE, "1a", sid="SM" + "7" * 32)

    for _ in range(2):
        assert twilio_post(client, params).status_code == 200

    assert Reply.objects.count() == 1


# --- codes ---------------------------------------------------------------------------------


def test_codes_are_per_number_the_smallest_free_and_reused_only_after_close(
    client, twilio_api, twilio, alice, bob, page
):
    first = page([alice], title="First")
    second = page([alice, bob], title="Second")

    codes = {(c.address, c.alarm.title): c.number for c in ReplyCode.objects.all()}
    assert codes == {
        (ALICE_PHONE, "First"): 1,
        (ALICE_PHONE, "Second"): 2,
        (BOB_PHONE, "Second"): 1,
    }
    assert sent_to(twilio_api, BOB_PHONE)[-1].endswith(
        "Reply 1a to acknowledge, 1c to claim, 1r to resolve"
    )

    lifecycle.resolve(first.pk, SYSTEM)
    third = page([alice], title="Third")

    open_codes = ReplyCode.objects.filter(address=ALICE_PHONE, released_at=None)
    assert dict(open_codes.values_list("alarm__title", "number")) == {"Second": 2, "Third": 1}
    reply(client, ALICE_PHONE, "2a")
    second.refresh_from_db(), third.refresh_from_db()
    assert (second.status, third.status) == ("acknowledged", "triggered")


def test_a_code_keeps_its_number_while_its_alarm_escalates(twilio, alice, page):
    alarm = page([alice])
    page([alice], title="Other")

    Alarm.objects.filter(pk=alarm.pk).update(next_escalation_at=timezone.now())
    alarm.refresh_from_db()
    engine.escalate_again(alarm)
    alarm.save()
    assert engine.run_due_step(alarm.pk)
    send_pending(alarm)

    bodies = list(Delivery.objects.filter(alarm=alarm).values_list("message", flat=True))
    assert len(bodies) == 2
    assert all("Reply 1a" in body for body in bodies)


@pytest.mark.parametrize(
    ("text", "acts_on", "status"),
    [
        ("a", "Second", "acknowledged"),
        ("ACK", "Second", "acknowledged"),
        ("ack 1", "First", "acknowledged"),
        ("a #1", "First", "acknowledged"),
        ("1 a", "First", "acknowledged"),
        ("1r", "First", "resolved"),
        ("2c", "Second", "acknowledged"),
    ],
)
def test_every_reply_form_acts_on_the_alarm_it_names(
    client, twilio, alice, page, text, acts_on, status
):
    page([alice], title="First")
    page([alice], title="Second")

    stored = reply(client, ALICE_PHONE, text)

    acted = Alarm.objects.get(title=acts_on)
    other = Alarm.objects.exclude(pk=acted.pk).get()
    assert acted.status == status and other.status == "triggered"
    assert stored.alarm_id == acted.pk


def test_a_claim_with_an_eta_acknowledges_and_says_when(client, twilio_api, twilio, alice, page):
    alarm = page([alice])

    reply(client, ALICE_PHONE, "1c 10")

    alarm.refresh_from_db()
    (claim,) = Claim.objects.filter(alarm=alarm)
    assert alarm.status == "acknowledged"
    assert claim.person == alice and claim.via == "Alice by SMS reply 1c 10"
    assert round((claim.eta_at - claim.claimed_at).total_seconds()) == 600
    assert sent_to(twilio_api, ALICE_PHONE)[-1] == (
        "On your way to #1 Emergency key pressed: Reception, ETA 10 min. Reply 1r once resolved."
    )


def test_a_second_acknowledgement_says_who_was_first(client, twilio_api, twilio, alice, bob, page):
    alarm = page([alice, bob])
    lifecycle.acknowledge(alarm.pk, Actor("Alice by SMS reply 1a", person=alice))
    at = timezone.localtime(Alarm.objects.get(pk=alarm.pk).acknowledged_at).strftime("%H:%M")

    stored = reply(client, BOB_PHONE, "1a")

    assert stored.outcome == "already acknowledged"
    assert sent_to(twilio_api, BOB_PHONE)[-1] == f"#1 was already acknowledged by Alice at {at}"


def test_a_reply_to_a_closed_alarm_says_what_became_of_it(client, twilio_api, twilio, alice, page):
    alarm = page([alice])
    lifecycle.resolve(alarm.pk, Actor("Carol"))
    at = timezone.localtime(Alarm.objects.get(pk=alarm.pk).resolved_at).strftime("%H:%M")

    reply(client, ALICE_PHONE, "1a")

    assert sent_to(twilio_api, ALICE_PHONE)[-1] == f"#1 was already resolved by Carol at {at}"


@pytest.mark.parametrize(("text", "answer"), [("7a", "Unknown code 7."), ("hello", UNKNOWN_REPLY)])
def test_an_unknown_code_or_text_is_answered_so(
    client, twilio_api, twilio, alice, page, text, answer
):
    alarm = page([alice])

    reply(client, ALICE_PHONE, text)

    assert sent_to(twilio_api, ALICE_PHONE)[-1] == answer
    alarm.refresh_from_db()
    assert alarm.status == "triggered"


def test_a_number_that_is_nobodys_gets_no_answer(client, twilio_api, twilio, alice, page):
    alarm = page([alice])
    before = len(twilio_api.created)

    stored = reply(client, "+4917000000001", "1a")

    assert stored.person is None and stored.answer == ""
    assert stored.outcome == "not from a person's number: ignored"
    assert len(twilio_api.created) == before
    alarm.refresh_from_db()
    assert alarm.status == "triggered"


def test_replies_that_change_nothing_are_answered_a_few_times_an_hour(
    client, twilio_api, twilio, alice, page, settings
):
    page([alice])
    before = len(twilio_api.created)

    stored = [reply(client, ALICE_PHONE, "9a") for _ in range(settings.REPLY_ANSWERS_PER_HOUR + 3)]

    assert len(twilio_api.created) - before == settings.REPLY_ANSWERS_PER_HOUR
    assert stored[-1].answer == "" and "too many replies" in stored[-1].outcome
    # One that acts is always answered.
    reply(client, ALICE_PHONE, "1a")
    assert sent_to(twilio_api, ALICE_PHONE)[-1].startswith("Acknowledged #1")


# --- opting out and in ------------------------------------------------------------------------


GATEWAY_TOKEN = "in-" + "4b1d" * 8


@pytest.fixture
def gateway(sms_gateway):
    return make_channel(
        "sms_http",
        url=f"{sms_gateway.url}/api/sms?key=gw-key-61c4b0a8e2",
        inbound_token=GATEWAY_TOKEN,
        inbound_from_field="msisdn",
        inbound_text_field="message.text",
        inbound_id_field="message.id",
    )


def gateway_reply(client, sender: str, text: str, message_id: str = "") -> Reply:
    body = {"msisdn": sender, "message": {"text": text, "id": message_id}}
    response = client.post(
        f"/v1/replies/sms/{GATEWAY_TOKEN}", body, content_type="application/json"
    )
    assert response.status_code == 202, response.content
    stored = Reply.objects.order_by("-id").first()
    tasks.handle(stored.pk)
    stored.refresh_from_db()
    return stored


def gateway_texts(provider, number: str) -> list[str]:
    return [
        r.json["text"] for r in provider.requests if r.path == "/api/sms" and r.json["to"] == number
    ]


def test_stop_mutes_sms_and_start_unmutes_it(client, sms_gateway, gateway, alice, page):
    page([alice])

    stopped = gateway_reply(client, "0049 151 23456789", "STOP")

    alice.refresh_from_db()
    assert alice.sms_opted_out_at is not None
    assert stopped.outcome == "SMS muted (STOP)"
    assert gateway_texts(sms_gateway, ALICE_PHONE)[-1].startswith(
        "You will get no more alarm messages by SMS"
    )
    muted = page([alice], title="While muted", sent=False)
    assert not Delivery.objects.filter(alarm=muted).exists()
    assert muted.events.filter(kind=AlarmEvent.Kind.STEP_SKIPPED).exists()

    gateway_reply(client, ALICE_PHONE, "start")

    alice.refresh_from_db()
    assert alice.sms_opted_out_at is None
    assert (
        gateway_texts(sms_gateway, ALICE_PHONE)[-1]
        == "You will get alarm messages by SMS here again."
    )
    assert Delivery.objects.filter(alarm=page([alice], title="After")).count() == 1


def test_stop_through_twilio_mutes_without_an_answer_of_ours(
    client, twilio_api, twilio, alice, page
):
    page([alice])
    before = len(twilio_api.created)

    reply(client, ALICE_PHONE, "stop")

    alice.refresh_from_db()
    assert alice.sms_opted_out_at is not None
    assert len(twilio_api.created) == before  # Twilio answers STOP itself


def test_the_admin_shows_who_is_muted(admin_client, alice):
    Person.objects.filter(pk=alice.pk).update(sms_opted_out_at=timezone.now())

    page = admin_client.get("/admin/devices/person/?muted=yes").content.decode()

    assert "Alice" in page and re.search(r"<td class=\"field-muted\">sms</td>", page)


# --- the generic gateway ------------------------------------------------------------------------


def test_a_gateway_reply_acknowledges_with_its_own_field_names(
    client, sms_gateway, gateway, alice, page
):
    alarm = page([alice])

    stored = gateway_reply(client, "+49 151 2345 6789", "1A", message_id="gw-77")

    alarm.refresh_from_db()
    assert alarm.status == "acknowledged" and stored.provider_id == "gw-77"
    assert (
        gateway_texts(sms_gateway, ALICE_PHONE)[-1]
        == "Acknowledged #1 Emergency key pressed: Reception"
    )


def test_a_gateway_may_forward_a_form_or_a_query_string(client, sms_gateway, alice, page):
    make_channel("sms_http", url=f"{sms_gateway.url}/api/sms?key=gw-key-61c4b0a8e2",
                 inbound_token=GATEWAY_TOKEN)  # fmt: skip
    alarm = page([alice])

    form = client.post(f"/v1/replies/sms/{GATEWAY_TOKEN}", {"from": ALICE_PHONE, "text": "7a"})
    query = client.get(f"/v1/replies/sms/{GATEWAY_TOKEN}", {"from": ALICE_PHONE, "text": "1a"})

    assert (form.status_code, query.status_code) == (202, 202)
    for stored in Reply.objects.order_by("id"):
        tasks.handle(stored.pk)
    alarm.refresh_from_db()
    assert alarm.status == "acknowledged"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/replies/sms/not-the-token", {"msisdn": ALICE_PHONE}, 404),
        (f"/v1/replies/sms/{GATEWAY_TOKEN}", {"message": {"text": "1a"}}, 400),
        (f"/v1/replies/sms/{GATEWAY_TOKEN}", "{not json", 400),
    ],
)
def test_a_gateway_request_that_is_not_one_is_refused_with_json(
    client, gateway, path, body, status
):
    response = client.post(path, body, content_type="application/json")

    assert response.status_code == status
    assert response.json()["error"]
    assert not Reply.objects.exists()


# --- Signal -------------------------------------------------------------------------------------


def test_signal_replies_are_fetched_handled_and_answered(signal_api, alice, page):

    signal_channel(signal_api)
    alarm = page([alice], methods=("signal",))
    assert "Reply 1a to acknowledge" in Delivery.objects.get(alarm=alarm).message
    envelopes = [
        {"envelope": {"source": ALICE_SIGNAL, "sourceNumber": ALICE_SIGNAL, "sourceName": "Alice",
                      "timestamp": 1764740000000, "typingMessage": {"action": "STARTED"}},
         "account": "+4930901820"},
        {"envelope": {"source": ALICE_SIGNAL, "sourceNumber": ALICE_SIGNAL, "sourceName": "Alice",
                      "timestamp": 1764740000500,
                      "dataMessage": {"timestamp": 1764740000500, "message": "1r",
                                      "groupInfo": {"groupId": "aGVsbG8=", "type": "DELIVER"}}},
         "account": "+4930901820"},
        {"envelope": {"source": ALICE_SIGNAL, "sourceNumber": ALICE_SIGNAL, "sourceName": "Alice",
                      "timestamp": 1764740001000,
                      "dataMessage": {"timestamp": 1764740001000, "message": "1c 5"}},
         "account": "+4930901820"},
    ]  # fmt: skip
    handed = []

    def receive(request, match):

        handed.append(request)
        return Answer(200, [] if len(handed) > 1 else envelopes)

    signal_api.route("GET", r"/v1/receive/(?P<number>[^/]+)", receive)

    assert signal_receive.poll() == 1
    assert signal_receive.poll() == 0

    alarm.refresh_from_db()
    assert alarm.status == "acknowledged"
    assert alarm.acknowledged_by == "Alice by Signal reply 1c 5"
    assert handed[0].path == "/v1/receive/+4930901820"
    sent = [r.json for r in signal_api.requests if r.path == "/v2/send"]
    assert sent[-1]["recipients"] == [ALICE_SIGNAL]
    assert sent[-1]["message"].startswith("On your way to #1 Emergency key pressed")


def test_a_code_left_on_a_closed_alarm_holds_no_number(twilio_api, twilio, alice, page):
    closed = page([alice], title="Closed")
    lifecycle.resolve(closed.pk, SYSTEM)
    # A page taken as its alarm closed took its code after the close released them.
    ReplyCode.objects.create(address=ALICE_PHONE, number=1, alarm=closed, person=alice)

    page([alice], title="Next")

    assert sent_to(twilio_api, ALICE_PHONE)[-1].endswith(
        "Reply 1a to acknowledge, 1c to claim, 1r to resolve"
    )
    assert not ReplyCode.objects.filter(alarm=closed, released_at=None).exists()
