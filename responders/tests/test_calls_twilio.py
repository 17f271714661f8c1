"""Phone calls through Twilio Voice: the call placed on the local server speaking Twilio's Calls
API, then Twilio's side played as Twilio plays it (signed requests to the URLs we gave it,
TwiML read back), for each key, no key, voicemail, busy and no answer."""

import re
import uuid
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from twilio.request_validator import RequestValidator

from alarms import engine, lifecycle
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import SYSTEM
from notifications.delivery.sample_sends import send_test
from notifications.models import Delivery
from notifications.tests.fake_provider import Answer
from notifications.tests.test_sms_signal import basic_auth

from .conftest import ACCOUNT_SID, ALICE_PHONE, AUTH_TOKEN, make_channel

pytestmark = pytest.mark.django_db

CALLER = "+14155550199"


@pytest.fixture
def twilio_voice(provider):
    """Twilio's Calls API: checks what Twilio checks, answers a call resource."""
    provider.calls = []

    def calls(request, match):
        if match["sid"] != ACCOUNT_SID or basic_auth(request) != (ACCOUNT_SID, AUTH_TOKEN):
            return Answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
        form = request.form
        for name in ("To", "From"):
            if not form.get(name):
                return Answer(400, {"code": 21201, "message": f"{name} is required", "status": 400})
        if not form.get("Url") and not form.get("Twiml"):
            return Answer(
                400, {"code": 21205, "message": "Url or Twiml is required", "status": 400}
            )
        sid = "CA" + uuid.uuid4().hex
        provider.calls.append(form)
        return Answer(201, {"sid": sid, "status": "queued", "to": form["To"], "from": form["From"],
                            "account_sid": ACCOUNT_SID, "direction": "outbound-api"})  # fmt: skip

    provider.route("POST", r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Calls\.json", calls)
    make_channel("twilio_voice", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **{"from": CALLER},
                 base_url=provider.url)  # fmt: skip
    return provider


@pytest.fixture
def called(twilio_voice, alice, page):
    """Alice called about a new alarm: (the alarm, its call's delivery, what Twilio was told)."""
    alarm = page([alice], methods=("voice",))
    (call,) = twilio_voice.calls
    return alarm, Delivery.objects.get(alarm=alarm), call


def twilio_calls(client, url: str, **params):
    """Twilio requesting one of our URLs during the call, signed as Twilio signs."""
    params = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "1" * 32, "From": CALLER,
              "To": ALICE_PHONE, "Direction": "outbound-api", **params}  # fmt: skip
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    response = client.post(urlsplit(url).path, params, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    return ElementTree.fromstring(response.content)


def says(twiml) -> list[str]:
    return [say.text for say in twiml.iter("Say")]


def gather_action(twiml) -> str:
    (gather,) = twiml.iter("Gather")
    return gather.get("action")


def test_the_call_is_placed_with_signed_callbacks_and_machine_detection(called):
    alarm, delivery, call = called

    assert call["To"] == ALICE_PHONE and call["From"] == CALLER
    assert call["MachineDetection"] == "Enable" and call["Timeout"] == "30"
    token = re.fullmatch(r"http://127\.0\.0\.1:8000/v1/calls/twilio/([^/]+)/answer", call["Url"])[1]
    assert token.startswith(f"{delivery.pk}-") and len(token) > 30
    assert call["StatusCallback"].endswith(f"/v1/calls/twilio/{token}/status")
    assert delivery.status == "sent" and delivery.provider_message_id.startswith("CA")
    assert delivery.outcome == ""


def test_a_person_hears_the_alarm_three_times_and_key_4_acknowledges(client, called):
    alarm, delivery, call = called

    menu = twilio_calls(client, call["Url"], CallStatus="in-progress", AnsweredBy="human")

    script = (
        "Emergency. Emergency key pressed at Clinic North, Reception. "
        "Press 4 to acknowledge, 5 to claim, 0 to repeat."
    )
    (gather,) = menu.iter("Gather")
    assert says(gather) == [script] * 3
    assert gather.get("numDigits") == "1"
    assert says(menu)[-1] == "No key was pressed. Goodbye."

    done = twilio_calls(client, gather_action(menu), Digits="4", CallStatus="in-progress")
    assert says(done) == ["Acknowledged. Thank you. Goodbye."]
    assert [child.tag for child in done] == ["Say", "Hangup"]
    twilio_calls(client, call["StatusCallback"], CallStatus="completed", CallDuration="21")

    alarm.refresh_from_db(), delivery.refresh_from_db()
    assert alarm.status == "acknowledged"
    assert alarm.acknowledged_by == "Alice by phone call, key 4"
    assert delivery.outcome == "acknowledged"  # the end of the call does not overwrite it
    (entry,) = alarm.events.filter(kind=AlarmEvent.Kind.CALL)
    assert entry.text == f"Call to Alice ({ALICE_PHONE}): answered: acknowledged (key 4)"


def test_key_5_claims_with_the_minutes_entered(client, called):
    alarm, delivery, call = called
    menu = twilio_calls(client, call["Url"], CallStatus="in-progress", AnsweredBy="human")

    asked = twilio_calls(client, gather_action(menu), Digits="5")
    assert says(asked) == [
        "In how many minutes will you be there? Enter the minutes, then the hash key."
    ]
    (gather,) = asked.iter("Gather")
    assert gather.get("finishOnKey") == "#"
    done = twilio_calls(client, gather.get("action"), Digits="12")

    assert says(done) == ["Thank you. You are on your way. Goodbye."]
    alarm.refresh_from_db(), delivery.refresh_from_db()
    claim = alarm.claims.get()
    assert alarm.status == "acknowledged" and delivery.outcome == "claimed"
    assert round((claim.eta_at - claim.claimed_at).total_seconds()) == 12 * 60


def test_key_0_repeats_and_another_key_does_nothing(client, called):
    alarm, delivery, call = called
    menu = twilio_calls(client, call["Url"], CallStatus="in-progress", AnsweredBy="human")

    again = twilio_calls(client, gather_action(menu), Digits="0")
    other = twilio_calls(client, gather_action(again), Digits="9")

    assert len(says(again)) == 4  # three readings and the goodbye
    assert says(other)[0] == "That key does nothing."
    alarm.refresh_from_db()
    assert alarm.status == "triggered"


@pytest.mark.parametrize(
    ("status", "answered_by", "outcome"),
    [
        ("completed", "human", "no_key"),
        ("completed", "machine_end_beep", "voicemail"),
        ("busy", "", "busy"),
        ("no-answer", "", "no_answer"),
        ("failed", "", "failed"),
    ],
)
def test_a_call_without_a_key_changes_nothing_and_says_how_it_ended(
    client, called, status, answered_by, outcome
):
    alarm, delivery, call = called
    due = Alarm.objects.get(pk=alarm.pk).next_escalation_at
    if answered_by == "human":
        twilio_calls(client, call["Url"], CallStatus="in-progress", AnsweredBy="human")

    params = {"CallStatus": status, **({"AnsweredBy": answered_by} if answered_by else {})}
    twilio_calls(client, call["StatusCallback"], **params)

    alarm.refresh_from_db(), delivery.refresh_from_db()
    assert delivery.outcome == outcome
    assert alarm.status == "triggered" and alarm.next_escalation_at == due
    assert alarm.events.filter(kind=AlarmEvent.Kind.CALL).count() == 1


def test_a_voicemail_hears_the_alarm_once_and_nothing_is_acknowledged(client, called):
    alarm, delivery, call = called

    twiml = twilio_calls(client, call["Url"], CallStatus="in-progress", AnsweredBy="machine_start")

    assert len(says(twiml)) == 1 and not list(twiml.iter("Gather"))
    delivery.refresh_from_db()
    assert delivery.outcome == "voicemail"
    assert Alarm.objects.get(pk=alarm.pk).status == "triggered"


def test_a_callback_without_twilios_signature_or_a_known_call_is_refused(client, called):
    alarm, delivery, call = called
    path = urlsplit(call["Url"]).path
    token = path.split("/")[4]
    forged = token.rsplit("-", 1)[0] + "-" + "0" * 32

    unsigned = client.post(path.replace("/answer", "/key"), {"Digits": "4"})
    unknown = client.post(path.replace(token, forged), {"Digits": "4"})

    assert unsigned.status_code == 403 and "signature" in unsigned.json()["error"]
    assert unknown.status_code == 404
    assert Alarm.objects.get(pk=alarm.pk).status == "triggered"


def test_a_step_run_by_the_drain_places_its_call_with_the_delivery_named(
    twilio_voice, alice, make_policy, make_device
):
    policy = make_policy([(0, [alice], [])], name="Call first")
    policy.steps.update(methods=["voice"])
    device, _ = make_device(name="Desk phone drained", default_policy=policy)
    alarm = lifecycle.raise_alarm(
        source="yealink", dedup_key="drained", title="Emergency key pressed", device=device,
        actor=SYSTEM,
    ).alarm  # fmt: skip

    assert engine.run_due_now() == 1  # its first message taken before its row was written

    (call,) = twilio_voice.calls
    delivery = Delivery.objects.get(alarm=alarm)
    assert delivery.status == "sent"
    assert f"/v1/calls/twilio/{delivery.pk}-" in call["Url"]


def test_the_admins_test_call_says_the_sample_alarm_and_takes_no_key(twilio_voice, alice):
    (result,) = [r for r in send_test(person=alice) if r[0].startswith("Phone call")]

    (call,) = twilio_voice.calls
    assert result[2] is True and "Url" not in call
    twiml = ElementTree.fromstring(call["Twiml"])
    assert says(twiml)[0].startswith("This is a test call. Emergency. Test message")
    assert says(twiml)[-1] == "This was a test call. No key is needed. Goodbye."


def test_a_callback_naming_no_call_in_any_alphabet_is_404(client, called):
    for token in ("1-ä" * 3, "ünknown", "-"):
        assert client.post(f"/v1/calls/twilio/{token}/answer", {}).status_code == 404
