"""Personal notification rules: a step that says "personal" reaches each person by their own
contact points at their own delays, for the alarm's urgency; an ACK at any point stops what
has not gone; a contact point that cannot be used, or fails for good, hands over to the next
at once; a person with none left is said on the timeline and the board card."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms import lifecycle
from alarms.board.cards import card
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import Actor
from devices.models import NotificationRule
from notifications.models import Delivery

from .steps import make_channel, make_due, send
from .test_push import NTFY_TOKEN, ntfy  # noqa: F401 (a fixture)
from .test_sms_signal import (  # noqa: F401 (a fixture)
    ACCOUNT_SID,
    ALICE_PHONE,
    AUTH_TOKEN,
    TWILIO_FROM,
    twilio_api,
    twilio_channel,
)

pytestmark = pytest.mark.django_db

UNSUBSCRIBED = "+12025550143"  # Twilio's stand-in answers 21610 for it


@pytest.fixture
def alice(make_person):
    person = make_person("Alice", phone=ALICE_PHONE)
    person.issue_ntfy_topic()
    person.save()
    return person


@pytest.fixture
def gateways(ntfy, twilio_api):  # noqa: F811 (fixtures)
    make_channel("ntfy", url=ntfy.url, token=NTFY_TOKEN)
    twilio_channel(twilio_api)
    make_channel("twilio_voice", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN,
                 **{"from": TWILIO_FROM, "base_url": twilio_api.url})  # fmt: skip
    return ntfy, twilio_api


def rules(person, *lines, urgency="high"):
    for method, minutes in lines:
        NotificationRule.objects.create(
            person=person, urgency=urgency, method=method, delay_minutes=minutes
        )


def planned(alarm) -> list[tuple[str, str, int]]:
    """(method, status, minutes after the step) of the alarm's messages to people."""
    rows = Delivery.objects.filter(alarm=alarm, event="notify").order_by("next_attempt_at", "pk")
    started = alarm.events.get(kind=AlarmEvent.Kind.STEP_NOTIFIED).at
    return [
        (row.method, row.status, round((row.next_attempt_at - started).total_seconds() / 60))
        for row in rows
    ]


def row(alarm, method) -> Delivery:
    return Delivery.objects.get(alarm=alarm, event="notify", method=method)


def timeline(alarm) -> list[str]:
    return list(alarm.events.order_by("at", "id").values_list("text", flat=True))


def test_a_step_follows_the_persons_rules_for_a_high_urgency_alarm(gateways, raise_alarm, alice):
    rules(alice, ("ntfy", 0), ("sms", 2), ("voice", 5))
    rules(alice, ("email", 0), urgency="low")

    alarm = raise_alarm([alice], methods=["personal"], severity="critical")

    assert planned(alarm) == [
        ("ntfy", "pending", 0),
        ("sms", "pending", 2),
        ("voice", "pending", 5),
    ]
    assert "notifying Alice by ntfy, Alice by sms in 2 min, Alice by voice in 5 min" in (
        alarm.events.get(kind=AlarmEvent.Kind.STEP_NOTIFIED).text
    )


def test_a_low_urgency_alarm_follows_the_low_rules_and_no_rules_mean_email(
    gateways, raise_alarm, alice, bob
):
    rules(alice, ("ntfy", 0), ("sms", 2))
    rules(alice, ("email", 10), urgency="low")

    alarm = raise_alarm([alice, bob], methods=["personal"], severity="warning")

    rows = Delivery.objects.filter(alarm=alarm).order_by("person__name")
    assert [(r.person.name, r.method, r.next_attempt_at > timezone.now()) for r in rows] == [
        ("Alice", "email", True),  # in ten minutes
        ("Bob", "email", False),  # Bob has no rules: by email at once
    ]


def test_a_step_may_force_a_method_beside_the_rules(gateways, raise_alarm, alice):
    rules(alice, ("ntfy", 0), ("sms", 2))

    alarm = raise_alarm([alice], methods=["personal", "sms"], severity="critical")

    assert sorted((m, minutes) for m, _, minutes in planned(alarm)) == [("ntfy", 0), ("sms", 0)]


@pytest.mark.parametrize("acknowledged_after", ["ntfy", "sms", "voice"])
def test_an_ack_at_any_point_stops_every_rule_not_yet_sent(
    gateways, raise_alarm, alice, acknowledged_after
):
    ntfy_server, twilio = gateways
    rules(alice, ("ntfy", 0), ("sms", 2), ("voice", 5))
    alarm = raise_alarm([alice], methods=["personal"], severity="critical")
    order = ["ntfy", "sms", "voice"]
    for method in order[: order.index(acknowledged_after) + 1]:
        if method != "voice":  # the call is not placed here: its turn is what matters
            assert send(row(alarm, method)).status == "sent"

    lifecycle.acknowledge(alarm.pk, Actor("Alice (push button)", person=alice))

    statuses = {r.method: r.status for r in Delivery.objects.filter(alarm=alarm, event="notify")}
    sent_before = order[: order.index(acknowledged_after) + 1]
    assert all(statuses[m] == "cancelled" for m in order if m not in sent_before)
    # Due later or not, nothing cancelled goes out: the worker's task finds nothing to send.
    for method in order:
        make_due(row(alarm, method))
        send(row(alarm, method))
    assert len(ntfy_server.published) == 1
    assert len(twilio.created) == (1 if "sms" in sent_before else 0) + sum(
        1
        for r in Delivery.objects.filter(alarm=alarm, event="stand_down", method="sms")
        if r.status == "sent"
    )


def test_a_contact_point_that_cannot_be_used_hands_over_at_once(gateways, raise_alarm, alice):
    alice.sms_opted_out_at = timezone.now()  # she replied STOP
    alice.save()
    rules(alice, ("sms", 0), ("ntfy", 3))

    alarm = raise_alarm([alice], methods=["personal"], severity="high")

    assert planned(alarm) == [("ntfy", "pending", 0)]
    (note,) = alarm.events.filter(kind=AlarmEvent.Kind.UNREACHABLE).values_list("text", flat=True)
    assert note.endswith("Alice cannot be reached by sms: ntfy goes at once instead")


def test_a_permanent_failure_tries_the_next_contact_point_now(gateways, raise_alarm, make_person):
    _, twilio = gateways
    dora = make_person("Dora", phone=UNSUBSCRIBED)
    dora.issue_ntfy_topic()
    dora.save()
    rules(dora, ("sms", 0), ("ntfy", 5))
    alarm = raise_alarm([dora], methods=["personal"], severity="critical")

    failed = send(row(alarm, "sms"))

    assert failed.status == "failed"
    following = row(alarm, "ntfy")
    assert following.next_attempt_at <= timezone.now() + timedelta(seconds=1)
    assert any(
        "Failed to reach Dora by sms" in text and text.endswith("trying ntfy now instead")
        for text in timeline(alarm)
    )
    assert send(following).status == "sent"


def test_a_person_with_no_contact_point_left_is_said_on_the_timeline_and_the_card(
    gateways, raise_alarm, make_person
):
    dora = make_person("Dora", email="", phone=UNSUBSCRIBED)
    rules(dora, ("sms", 0), ("ntfy", 1))  # she has no topic: sms alone is left

    alarm = raise_alarm([dora], methods=["personal"], severity="critical")
    assert [m for m, _, _ in planned(alarm)] == ["sms"]
    send(row(alarm, "sms"))

    texts = Alarm.objects.get(pk=alarm.pk).events.filter(kind=AlarmEvent.Kind.UNREACHABLE)
    at_step, after_failure = texts.order_by("at", "id").values_list("text", flat=True)
    assert at_step.endswith(": Dora cannot be reached by ntfy")
    assert after_failure == "Dora cannot be reached: every contact point failed"
    assert card(Alarm.objects.get(pk=alarm.pk))["unreachable"] == ["Dora"]


def test_a_person_with_nothing_usable_is_said_when_the_step_runs(raise_alarm, make_person):
    dora = make_person("Dora", email="")
    rules(dora, ("sms", 0))

    alarm = raise_alarm([dora], methods=["personal"], severity="critical")

    assert not Delivery.objects.filter(alarm=alarm).exists()
    (note,) = alarm.events.filter(kind=AlarmEvent.Kind.UNREACHABLE).values_list("text", flat=True)
    assert note.endswith("Dora cannot be reached: no working contact point (sms)")
