"""Stand-downs: once an alarm is acknowledged, resolved or cancelled, everyone a step paged is
told once, on the contact point they were paged on, with the guarantees of a page (one row per
message, retries, the audit); a real SMTP server and the local Twilio server receive them."""

from email import message_from_bytes
from email.policy import default

import pytest
from django.utils import timezone

from alarms import lifecycle
from alarms.timeline import Actor
from notifications.models import Delivery
from notifications.tests.steps import send_pending

from .conftest import ALICE_PHONE, BOB_PHONE, sent_to

pytestmark = pytest.mark.django_db


def stand_downs(alarm) -> list[tuple[str, str]]:
    rows = Delivery.objects.filter(alarm=alarm, event="stand_down").select_related("person")
    return sorted((row.person.name, row.method) for row in rows)


def test_everyone_paged_is_stood_down_once_but_who_acknowledged(
    twilio_api, twilio, smtp_server, alice, bob, make_person, page
):
    carol = make_person("Carol", phone="+4915211112222")  # on the policy, never reached
    alarm = page([alice, bob], methods=("sms", "email"))
    lifecycle.acknowledge(alarm.pk, Actor("Alice by SMS reply 1a", person=alice))
    at = timezone.localtime(alarm.__class__.objects.get(pk=alarm.pk).acknowledged_at)

    assert set(send_pending(alarm)) == {"sent"}

    assert stand_downs(alarm) == [("Bob", "email"), ("Bob", "sms")]
    assert sent_to(twilio_api, BOB_PHONE)[-1] == (
        f"Stand down: #1 Emergency key pressed acknowledged by Alice at {at:%H:%M}"
    )
    mail = message_from_bytes(smtp_server.messages[-1].content, policy=default)
    assert str(mail["Subject"]).strip().startswith("Stand down: [CRITICAL] Emergency key pressed")
    assert smtp_server.messages[-1].rcpt_tos == ["bob@example.org"]
    assert not sent_to(twilio_api, carol.phone)

    # The resolve tells only who was not told yet: Alice, who acknowledged.
    lifecycle.resolve(alarm.pk, Actor("Dana"))
    send_pending(alarm)
    lifecycle.resolve(alarm.pk, Actor("Dana"))

    assert stand_downs(alarm) == [("Alice", "email"), ("Alice", "sms"), ("Bob", "email"),
                                  ("Bob", "sms")]  # fmt: skip
    assert sent_to(twilio_api, ALICE_PHONE)[-1].startswith(
        "Stand down: #1 Emergency key pressed resolved by Dana at "
    )
    assert len(sent_to(twilio_api, BOB_PHONE)) == 2  # the page and one stand-down


def test_a_stand_down_says_who_is_on_the_way(twilio_api, twilio, alice, bob, page):
    alarm = page([alice, bob])

    lifecycle.claim(alarm.pk, Actor("Alice by SMS reply 1c 10", person=alice), 10)
    send_pending(alarm)

    claim = alarm.claims.get()
    assert sent_to(twilio_api, BOB_PHONE)[-1] == (
        f"Stand down: #1 Emergency key pressed acknowledged by Alice at "
        f"{timezone.localtime(claim.claimed_at):%H:%M}, on the way: Alice, ETA 10 min "
        f"({timezone.localtime(claim.eta_at):%H:%M})"
    )


def test_a_policy_may_turn_stand_downs_off(twilio_api, twilio, alice, bob, page):
    alarm = page([alice, bob], stand_down=False)

    lifecycle.cancel(alarm.pk, Actor("Dana"))

    assert stand_downs(alarm) == []


def test_nobody_is_stood_down_who_was_never_reached(twilio_api, twilio, alice, bob, page):
    twilio_api.fail(400, body={"code": 21211, "message": "Invalid 'To' Phone Number"})
    alarm = page([alice], sent=False)
    assert Delivery.objects.get(alarm=alarm).status == "failed"

    lifecycle.resolve(alarm.pk, Actor("Dana"))

    assert stand_downs(alarm) == []


def test_a_stand_down_that_fails_is_retried_as_a_page_is(twilio_api, twilio, alice, bob, page):
    alarm = page([alice, bob])
    lifecycle.resolve(alarm.pk, Actor("Dana"))
    twilio_api.fail(503)

    assert sorted(send_pending(alarm)) == ["pending", "sent"]
    (waiting,) = Delivery.objects.filter(alarm=alarm, event="stand_down", status="pending")
    assert waiting.attempts == 1 and waiting.provider_status == "HTTP 503"
