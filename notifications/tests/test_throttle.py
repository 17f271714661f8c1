"""No floods: at most N messages per contact point and window. Pages beyond a limit are held
(the row says which limit and until when), then go as one message carrying every page held for
that phone, each with its code and the bundle's code for all; nothing is dropped, and the
first page of a critical alarm is never held. Counted at a local server speaking Twilio's
Messages API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import AlarmEvent
from alarms.timeline import SYSTEM, Actor
from notifications.delivery import sending, throttle
from notifications.models import Delivery
from responders import replies

from .steps import make_due, send
from .test_sms_signal import ALICE_PHONE, twilio_api, twilio_channel  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_per_window(settings):
    settings.THROTTLE_LIMITS = {**settings.THROTTLE_LIMITS, "sms": "2/15m,3/1h"}


@pytest.fixture
def page(make_policy, make_device, make_person, twilio_api):  # noqa: F811 (a fixture)
    """page(n, severity) raises alarm n paging Alice by SMS, runs its step, sends its page."""
    twilio_channel(twilio_api)
    alice = make_person("Alice", phone=ALICE_PHONE)
    policy = make_policy([(0, [alice], [])])
    policy.steps.update(methods=["sms"])
    device, _ = make_device(default_policy=policy)

    def raise_one(n: int, severity: str = "warning") -> Delivery:
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key=f"desk-{n}", title=f"Alarm {n}", device=device,
            severity=severity, actor=SYSTEM,
        ).alarm  # fmt: skip
        assert engine.run_due_step(alarm.pk)
        return send(Delivery.objects.get(alarm=alarm))

    return raise_one


def window_passes(minutes: int = 16) -> None:
    """Let the messages sent so far leave a window: they were sent that long ago."""
    earlier = timezone.now() - timedelta(minutes=minutes)
    Delivery.objects.filter(status="sent").update(sent_at=earlier)


def test_limits_read_as_written_and_a_malformed_one_is_refused():
    assert throttle.parse("5/15m, 11/1h,21/3h") == (
        throttle.Limit(5, 900),
        throttle.Limit(11, 3600),
        throttle.Limit(21, 10800),
    )
    assert [str(limit) for limit in throttle.parse("5/15m,11/1h,7/30s")] == [
        "5 per 15 min", "11 per 1 h", "7 per 30 s"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not a limit: '5 per hour'"):
        throttle.parse("5 per hour")


def test_a_page_beyond_the_limit_is_held_saying_which_limit_until_when(
    two_per_window,
    page,
    twilio_api,  # noqa: F811 (a fixture)
):
    first, second = page(1), page(2)
    held = page(3)

    assert (first.status, second.status) == ("sent", "sent")
    assert held.status == "pending" and held.attempts == 0
    assert held.held_by == f"2 per 15 min to {ALICE_PHONE}"
    assert held.next_attempt_at == first.sent_at + timedelta(minutes=15)
    until = timezone.localtime(held.next_attempt_at).strftime("%H:%M:%S")
    assert held.error == f"held by the limit 2 per 15 min until {until}"
    assert len(twilio_api.created) == 2
    # Taken again before then (a duplicate task), it is still held, and nothing is sent.
    assert send(held).status == "pending" and len(twilio_api.created) == 2


def test_held_pages_go_as_one_message_with_every_code_and_one_for_all(
    two_per_window,
    page,
    twilio_api,  # noqa: F811 (a fixture)
):
    page(1), page(2)
    third, fourth, fifth = page(3), page(4), page(5)
    assert {third.status, fourth.status, fifth.status} == {"pending"}
    window_passes()

    carrier = send(third)

    assert carrier.status == "sent" and len(twilio_api.created) == 3
    text = twilio_api.created[-1]["body"]
    assert "Alarm 3" in text and "Reply 3a to acknowledge" in text
    assert "+2 more alarms held back (2 per 15 min to " in text
    assert "- WARNING Alarm 4 @ " in text and "(reply 4a)" in text and "(reply 5a)" in text
    assert text.rstrip().endswith("Reply 100a to acknowledge all 3, 100r to resolve all.")
    for carried in (fourth, fifth):
        carried.refresh_from_db()
        assert (carried.status, carried.bundled_into_id) == ("sent", carrier.pk)
        assert carried.provider_status == "in a bundle"
        assert carried.alarm.events.filter(
            kind=AlarmEvent.Kind.DELIVERY_SENT,
            text__contains="in one message with 2 other messages held back by 2 per 15 min",
        ).exists()
    # Each carried page is done: its own task finds nothing to send.
    assert send(fourth).status == "sent" and len(twilio_api.created) == 3


def test_a_reply_with_the_bundles_code_acknowledges_all_of_it(
    two_per_window,
    page,
    twilio_api,  # noqa: F811 (a fixture)
):
    page(1), page(2)
    third, fourth = page(3), page(4)
    window_passes()
    send(third)

    reply = replies.receive(None, "sms", ALICE_PHONE, "100A")
    handled = replies.handle(reply.pk)

    assert handled.answer == "Acknowledged 2 of 2 alarms."
    for row in (third, fourth):
        row.alarm.refresh_from_db()
        assert row.alarm.status == "acknowledged"
        assert row.alarm.acknowledged_by == "Alice by SMS reply 100a"


def test_the_first_page_of_a_critical_alarm_is_never_held(
    two_per_window,
    page,
    twilio_api,  # noqa: F811 (a fixture)
):
    page(1), page(2)

    critical = page(3, severity="critical")

    assert critical.status == "sent" and critical.held_by == ""
    assert page(4).status == "pending"  # it counted: the window is full


def test_an_ack_cancels_a_held_page_and_a_bundle_carries_only_open_alarms(
    two_per_window,
    page,
    twilio_api,  # noqa: F811 (a fixture)
):
    page(1), page(2)
    third, fourth = page(3), page(4)
    lifecycle.acknowledge(fourth.alarm_id, Actor("Dana"))
    window_passes()

    send(third)

    fourth.refresh_from_db()
    assert fourth.status == "cancelled"
    assert "more alarm" not in twilio_api.created[-1]["body"]


def test_a_carrier_that_fails_hands_its_pages_back(
    two_per_window,
    page,
    twilio_api,  # noqa: F811 (a fixture)
):
    page(1), page(2)
    third, fourth = page(3), page(4)
    window_passes()
    twilio_api.fail(503)

    assert send(third).status == "pending"

    fourth.refresh_from_db()
    assert (fourth.status, fourth.bundled_into_id) == ("pending", None)
    assert send(fourth).status == "sent"  # on its own now, carrying the third
    third.refresh_from_db()
    assert (third.status, third.bundled_into_id) == ("sent", fourth.pk)


def test_the_admin_shows_each_contact_points_recent_volume_against_its_limits(
    two_per_window, page, client, make_user
):
    first = page(1)
    page(2), page(3)
    client.force_login(make_user("olga", role="Operators"))

    answer = client.get(f"/admin/devices/person/{first.person_id}/change/")

    assert answer.status_code == 200
    assert (
        f"sms {ALICE_PHONE}: 2 in 15 min, 2 in 1 h (limits: 2 per 15 min, 3 per 1 h); "
        "1 held back now"
    ) in answer.content.decode()


def test_stand_downs_beyond_the_limit_are_held_and_go_together(
    two_per_window,
    page,
    twilio_api,  # noqa: F811 (a fixture)
):
    first, second = page(1), page(2)
    for row in (first, second):
        lifecycle.acknowledge(row.alarm_id, Actor("Dana"))
    downs = Delivery.objects.filter(event="stand_down").order_by("pk")
    assert [send(row).status for row in downs] == ["pending", "pending"]  # the window is full
    window_passes()

    carrier = send(downs[0])

    assert carrier.status == "sent" and len(twilio_api.created) == 3
    assert "+1 more alarm no longer need you:" in twilio_api.created[-1]["body"]
    assert Delivery.objects.get(pk=downs[1].pk).bundled_into_id == carrier.pk


def test_a_carrier_taken_again_after_its_sender_died_carries_its_pages_again(
    two_per_window,
    page,
    twilio_api,  # noqa: F811 (a fixture)
):
    page(1), page(2)
    third, fourth = page(3), page(4)
    window_passes()
    make_due(third)
    assert sending.claim(third.pk) is not None  # taken with its bundle; then the worker died
    fourth.refresh_from_db()
    assert (fourth.status, fourth.bundled_into_id) == ("sending", third.pk)

    carrier = send(third)  # its lease ran out: the sweeper's task takes it again

    assert carrier.status == "sent" and len(twilio_api.created) == 3
    assert "Alarm 4" in twilio_api.created[-1]["body"]
    fourth.refresh_from_db()
    assert (fourth.status, fourth.bundled_into_id) == ("sent", third.pk)
