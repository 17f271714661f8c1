"""Phone calls through Asterisk: the ARI transport originates the call on a local server
speaking ARI's REST and event shapes, and the listener (as `manage.py listen_ari` runs it, in a
thread here) plays the script, reads the keys and records how the call ended."""

import threading
from urllib.parse import unquote

import pytest

from alarms.models import Alarm, AlarmEvent
from conftest import wait_until
from notifications.delivery.sample_sends import send_test
from notifications.models import Delivery
from responders import ari

from .conftest import ALICE_PHONE, make_channel
from .fake_ari import PASSWORD, USER, FakeAri

pytestmark = pytest.mark.django_db(transaction=True)

TTS = "http://tts.local:5002/api/tts?voice=en&text={text}"


@pytest.fixture
def asterisk():
    server = FakeAri()
    yield server
    server.stop()


@pytest.fixture
def ari_channel(asterisk):
    return make_channel("ari", url=asterisk.url, username=USER, password=PASSWORD, tts_url=TTS,
                        endpoint="PJSIP/{number}", caller_id="Alarm <100>")  # fmt: skip


@pytest.fixture
def listener(ari_channel, asterisk, monkeypatch):
    monkeypatch.setattr(ari.Listener, "KEY_WAIT_SECONDS", 0.3)
    running = ari.Listener(ari_channel)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_until(lambda: asterisk.connected() == 1)
    yield running
    running.stop()
    thread.join(5)


@pytest.fixture
def ringing(listener, asterisk, alice, page):
    """Alice's desk extension rings for a new alarm: (alarm, delivery, channel id)."""
    alice.extension = "201"
    alice.save()
    alarm = page([alice], methods=("voice",))
    (channel_id,) = asterisk.channels
    return alarm, Delivery.objects.get(alarm=alarm), channel_id


def spoken(asterisk, channel_id) -> list[str]:
    """What was played on the channel, as text (the TTS URLs' text)."""
    prefix = "sound:" + TTS.replace("{text}", "")
    return [unquote(media[len(prefix):]) if media.startswith(prefix) else media
            for play in asterisk.plays if play["channel"] == channel_id
            for media in play["media"]]  # fmt: skip


def outcome_of(delivery) -> str:
    return Delivery.objects.get(pk=delivery.pk).outcome


SCRIPT = ("Emergency. Emergency key pressed at Clinic North, Reception. Press 4 to acknowledge, "
          "5 to claim, 0 to repeat.")  # fmt: skip


def test_the_call_rings_the_extension_in_the_application(ringing, asterisk):
    alarm, delivery, channel_id = ringing

    channel = asterisk.channels[channel_id]
    assert channel["endpoint"] == "PJSIP/201" and channel["timeout"] == "30"
    assert channel_id.startswith(f"alarmbroker-{delivery.pk}-")
    assert channel["args"][0] == "delivery" and channel["args"][1].startswith(f"{delivery.pk}-")
    originate = next(r for r in asterisk.requests if r[:2] == ("POST", "/ari/channels"))
    assert originate[2]["app"] == "alarmbroker" and originate[2]["callerId"] == "Alarm <100>"
    assert delivery.status == "sent" and delivery.provider_message_id == channel_id


def test_answered_it_reads_the_alarm_and_key_4_acknowledges(ringing, asterisk):
    alarm, delivery, channel_id = ringing

    asterisk.answer(channel_id)
    wait_until(lambda: spoken(asterisk, channel_id)[:1] == [SCRIPT])
    asterisk.press(channel_id, "4")

    wait_until(lambda: Alarm.objects.get(pk=alarm.pk).status == "acknowledged")
    wait_until(lambda: channel_id not in asterisk.channels)  # it hung up after the thanks
    assert Alarm.objects.get(pk=alarm.pk).acknowledged_by == "Alice by phone call, key 4"
    wait_until(lambda: "Acknowledged. Thank you. Goodbye." in spoken(asterisk, channel_id))
    assert outcome_of(delivery) == "acknowledged"
    assert AlarmEvent.objects.filter(alarm=alarm, kind=AlarmEvent.Kind.CALL).count() == 1


def test_key_5_then_minutes_and_hash_claims(ringing, asterisk):
    alarm, delivery, channel_id = ringing
    asterisk.answer(channel_id)
    wait_until(lambda: spoken(asterisk, channel_id))

    for digit in "515#":
        asterisk.press(channel_id, digit)

    wait_until(lambda: outcome_of(delivery) == "claimed")
    claim = Alarm.objects.get(pk=alarm.pk).claims.get()
    assert round((claim.eta_at - claim.claimed_at).total_seconds()) == 15 * 60
    assert ("In how many minutes will you be there? Enter the minutes, then the hash key."
            in spoken(asterisk, channel_id))  # fmt: skip


def test_no_key_reads_it_three_times_then_hangs_up_and_escalation_goes_on(ringing, asterisk):
    alarm, delivery, channel_id = ringing

    asterisk.answer(channel_id)

    wait_until(lambda: outcome_of(delivery) == "no_key", timeout=10)
    assert spoken(asterisk, channel_id) == [SCRIPT] * 3
    assert Alarm.objects.get(pk=alarm.pk).status == "triggered"


def test_key_0_repeats_and_an_unknown_key_says_so(ringing, asterisk):
    alarm, delivery, channel_id = ringing
    asterisk.answer(channel_id)
    wait_until(lambda: spoken(asterisk, channel_id))

    asterisk.press(channel_id, "0")
    asterisk.press(channel_id, "7")

    wait_until(lambda: "That key does nothing." in spoken(asterisk, channel_id))
    assert spoken(asterisk, channel_id).count(SCRIPT) >= 3
    assert Alarm.objects.get(pk=alarm.pk).status == "triggered"


@pytest.mark.parametrize(
    ("cause", "text", "outcome"),
    [
        (17, "User busy", "busy"),
        (19, "No answer", "no_answer"),
        (38, "Network out of order", "failed"),
    ],
)
def test_a_call_never_answered_is_recorded_by_its_cause(ringing, asterisk, cause, text, outcome):
    alarm, delivery, channel_id = ringing

    asterisk.hang_up(channel_id, cause, text)

    wait_until(lambda: outcome_of(delivery) == outcome)
    entry = AlarmEvent.objects.get(alarm=alarm, kind=AlarmEvent.Kind.CALL)
    assert entry.text.endswith(f"(Asterisk cause {cause} {text})")
    assert Alarm.objects.get(pk=alarm.pk).status == "triggered"


def test_without_text_to_speech_it_plays_the_sounds_configured(asterisk, listener, alice, page):
    channel = listener.channel
    channel.config = {**channel.config, "tts_url": None, "sounds": ["sound:custom/alarm-reception"]}
    channel.config = {k: v for k, v in channel.config.items() if v is not None}
    channel.full_clean()
    channel.save()
    listener.transport = channel.transport()
    page([alice], methods=("voice",))
    (channel_id,) = asterisk.channels
    assert asterisk.channels[channel_id]["endpoint"] == f"PJSIP/{ALICE_PHONE}"

    asterisk.answer(channel_id)
    wait_until(lambda: spoken(asterisk, channel_id))
    asterisk.press(channel_id, "4")

    wait_until(lambda: "sound:auth-thankyou" in spoken(asterisk, channel_id))
    assert spoken(asterisk, channel_id)[0] == "sound:custom/alarm-reception"


def test_the_admins_test_call_through_asterisk_says_so_and_hangs_up(listener, asterisk, alice):
    alice.extension = "PJSIP/desk-7"
    alice.save()

    results = [r for r in send_test(person=alice) if r[0].startswith("Phone call")]

    assert results[0][2] is True, results
    (channel_id,) = asterisk.channels
    assert asterisk.channels[channel_id]["endpoint"] == "PJSIP/desk-7"
    asterisk.answer(channel_id)
    wait_until(lambda: channel_id not in asterisk.channels)
    assert spoken(asterisk, channel_id) == [
        "This is a test call from the alarm broker. No key is needed. Goodbye."
    ]
