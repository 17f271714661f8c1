"""Responders' tests: people paged by SMS or Signal through local servers speaking Twilio's,
a gateway's and signal-cli-rest-api's APIs, then answering."""

import itertools

import pytest
from django.conf import settings
from twilio.request_validator import RequestValidator

from alarms import engine, lifecycle
from alarms.timeline import SYSTEM
from notifications.models import Delivery
from notifications.tests.conftest import provider, raise_alarm  # noqa: F401 (fixtures)
from notifications.tests.steps import make_channel, send_pending  # noqa: F401 (for the tests)
from notifications.tests.test_sms_signal import (  # noqa: F401 (fixtures)
    ACCOUNT_SID,
    ALICE_PHONE,
    ALICE_SIGNAL,
    AUTH_TOKEN,
    signal_api,
    sms_gateway,
    twilio_api,
    twilio_channel,
)

BOB_PHONE = "+4915198765432"
_numbers = itertools.count(1)


@pytest.fixture
def twilio(twilio_api):  # noqa: F811 (the fixture imported above)
    """A Twilio SMS channel at the local server speaking Twilio's API."""
    return twilio_channel(twilio_api)


@pytest.fixture
def alice(make_person):
    return make_person("Alice", phone=ALICE_PHONE, signal_number=ALICE_SIGNAL)


@pytest.fixture
def bob(make_person):
    return make_person("Bob", phone=BOB_PHONE)


@pytest.fixture
def page(make_policy, make_device):
    """page(people, methods) -> an alarm whose first step paged them (its messages sent)."""

    def page(people, methods=("sms",), title="Emergency key pressed", sent=True, **policy_fields):
        n = next(_numbers)
        policy = make_policy([(0, list(people), [])], name=f"Policy {n}", **policy_fields)
        policy.steps.update(methods=list(methods))
        device, _ = make_device(name=f"Desk phone {n}", default_policy=policy)
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key=f"desk-{n}", title=title, device=device, actor=SYSTEM
        ).alarm
        assert engine.run_due_step(alarm.pk)
        statuses = send_pending(alarm)
        assert not sent or set(statuses) == {"sent"}
        return alarm

    return page


def sent_to(server, number: str) -> list[str]:
    """The bodies of the SMS the Twilio server took for this number, in order."""
    return [m["body"] for m in server.created if m["to"] == number]


def twilio_post(client, params: dict, token: str = AUTH_TOKEN, url: str | None = None):
    """Twilio's incoming-message webhook as Twilio sends it: form-encoded, signed with the
    account's auth token (by Twilio's own library) over the URL configured for it."""
    url = url or settings.PUBLIC_BASE_URL + "/v1/replies/twilio"
    signature = RequestValidator(token).compute_signature(url, params)
    return client.post("/v1/replies/twilio", params, HTTP_X_TWILIO_SIGNATURE=signature)


def inbound_sms(sender: str, body: str, sid: str | None = None) -> dict:
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": sid or f"SM{next(_numbers):032x}",
        "From": sender,
        "To": "+14155550100",
        "Body": body,
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }


def statuses(alarm) -> dict:
    return dict(Delivery.objects.filter(alarm=alarm).values_list("event", "status"))
