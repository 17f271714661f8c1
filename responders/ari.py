"""Calls through Asterisk: the events of the broker's Stasis application, read over ARI's
websocket, drive each call the ARI transport placed.

A call answered enters the application (StasisStart): its script is played, READINGS times
unless a key interrupts. A key (ChannelDtmfReceived) does what `calls.press` says; 5 first asks
for the minutes, ended by # (or after four digits, or a pause). A call that ends
(ChannelDestroyed) without a key is recorded by its hang-up cause: busy, no answer, failed, or
answered without a key. The channel's id names its delivery ("alarmbroker-<id>-…"), so a call
that never answered is still told apart.
"""

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import websockets
from django.db import close_old_connections
from websockets.sync.client import connect

from notifications.models import NotificationChannel
from notifications.transports.base import TransportError

from . import calls

log = logging.getLogger(__name__)

Outcome = calls.Outcome
# Hang-up causes (Q.850) of a call that was never answered.
BUSY_CAUSES = {17, 21}  # user busy, call rejected
NO_ANSWER_CAUSES = {18, 19, 20}  # no user responding, no answer, subscriber absent
# Asterisk's own sounds, for what a site without text to speech hears besides its script.
CORE_SOUNDS = {
    "acknowledged": ["sound:auth-thankyou", "sound:vm-goodbye"],
    "already": ["sound:auth-thankyou", "sound:vm-goodbye"],
    "claimed": ["sound:auth-thankyou", "sound:vm-goodbye"],
    "closed": ["sound:vm-goodbye"],
    "eta": ["sound:beep"],
    "test": ["sound:beep", "sound:vm-goodbye"],
    "unknown_key": ["sound:option-is-invalid"],
}


@dataclass
class Call:
    delivery: object
    channel_id: str
    readings: int = 0
    playback: str = ""  # the playback under way
    minutes: str | None = None  # digits of an ETA being entered (after key 5)
    ending: bool = False  # a goodbye is playing: hang up once it ends
    wait_until: float | None = None  # hang up (or take the minutes) if nothing comes by then


class Listener:
    """One ARI channel's event stream, and the calls under way on it."""

    # After the last reading, or while minutes are entered: how long to wait for a key.
    KEY_WAIT_SECONDS = 6.0

    def __init__(self, channel: NotificationChannel):
        self.channel = channel
        self.transport = channel.transport()
        self.calls: dict[str, Call] = {}
        self.stopping = threading.Event()

    # --- the stream ------------------------------------------------------------------------

    def run(self) -> None:
        """Read events until stopped, reconnecting (with a pause) whenever the stream breaks."""
        pause = 1.0
        while not self.stopping.is_set():
            try:
                self._read()
                pause = 1.0
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                log.warning("ARI events of %s: %s; again in %.0f s", self.channel.name,
                            exc.__class__.__name__, pause)  # fmt: skip
            except Exception:  # noqa: BLE001 (the listener outlives any one failure)
                log.exception("ARI events of %s failed; again in %.0f s", self.channel.name, pause)
            else:
                continue
            self.stopping.wait(pause)
            pause = min(pause * 2, 30.0)

    def stop(self) -> None:
        self.stopping.set()

    def _read(self) -> None:
        user, password = self.transport.auth()
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        with connect(self.transport.events_url(),
                     additional_headers={"Authorization": f"Basic {basic}"},
                     open_timeout=10) as socket:  # fmt: skip
            log.info("listening to ARI events of %s", self.channel.name)
            while not self.stopping.is_set():
                try:
                    message = socket.recv(timeout=0.5)
                except TimeoutError:
                    message = None
                close_old_connections()
                if message is not None:
                    self.handle(message)
                self.tick()

    # --- events ----------------------------------------------------------------------------

    def handle(self, message: str) -> None:
        """One event; what goes wrong with it is logged and costs no other call."""
        try:
            event = json.loads(message)
            kind = event.get("type", "")
            channel_id = (event.get("channel") or {}).get("id", "")
        except (ValueError, AttributeError):
            log.warning("ARI sent something that is not an event: %.200r", message)
            return
        try:
            if kind == "StasisStart":
                self._answered(channel_id, event.get("args") or [])
            elif kind == "ChannelDtmfReceived" and channel_id in self.calls:
                self._key(self.calls[channel_id], str(event.get("digit", "")))
            elif kind == "PlaybackFinished":
                target = (event.get("playback") or {}).get("target_uri", "")
                if target.startswith("channel:") and target[8:] in self.calls:
                    self._played(self.calls[target[8:]], event["playback"].get("id", ""))
            elif kind == "ChannelDestroyed":
                self._destroyed(channel_id, event.get("cause"), event.get("cause_txt", ""))
        except TransportError as exc:
            log.warning("ARI call %s: %s", channel_id, self.transport.redact(exc.status or
                        exc.message.split(":", 1)[0]))  # fmt: skip
        except Exception:  # noqa: BLE001 (one call's failure must not end the others)
            log.exception("ARI call %s: %s failed", channel_id, kind)

    def _answered(self, channel_id: str, args: list) -> None:
        if args == ["test"]:  # the admin's test call: it says so, and goodbye
            self._say(self.calls.setdefault(channel_id, Call(None, channel_id)), "test", True)
            return
        token = args[1] if len(args) > 1 and args[0] == "delivery" else ""
        delivery = calls.delivery_of(token)
        if delivery is not None and delivery.channel_id != self.channel.pk:
            return  # another ARI channel's call on the same application: its listener's
        if delivery is None:
            self.transport.rest("DELETE", f"/channels/{channel_id}")
            return
        call = self.calls[channel_id] = Call(delivery, channel_id)
        if not delivery.alarm.is_open:
            self._say(call, "closed", ending=True)
            return
        self._read_script(call)

    def _read_script(self, call: Call) -> None:
        call.readings += 1
        call.wait_until = None
        self._play(call, self.transport.media(calls.script(call.delivery)))

    def _played(self, call: Call, playback_id: str) -> None:
        if playback_id != call.playback:
            return  # one stopped for another
        call.playback = ""
        if call.ending:
            self._hang_up(call)
        elif call.minutes is not None:
            call.wait_until = time.monotonic() + self.KEY_WAIT_SECONDS
        elif call.readings < calls.READINGS:
            self._read_script(call)
        else:
            call.wait_until = time.monotonic() + self.KEY_WAIT_SECONDS

    def _key(self, call: Call, digit: str) -> None:
        if call.ending:
            return
        if call.minutes is not None:  # entering the ETA
            if digit != "#":
                call.minutes += digit
            if digit == "#" or len(call.minutes) >= 4:
                self._claim(call)
            else:
                call.wait_until = time.monotonic() + self.KEY_WAIT_SECONDS
            return
        self._stop_playing(call)
        if digit == calls.CLAIM_KEY:
            call.minutes = ""
            self._say(call, "eta")
            return
        said = calls.press(call.delivery, digit)
        if said == "repeat":
            call.readings = 0
            self._read_script(call)
        elif said == "unknown_key":
            call.readings = 1
            script = self.transport.media(calls.script(call.delivery))
            self._play(call, self._speech("unknown_key") + script)
        else:
            self._say(call, said, ending=True)

    def _claim(self, call: Call) -> None:
        minutes = int(call.minutes) if call.minutes and call.minutes.isdigit() else None
        call.minutes, call.wait_until = None, None
        self._stop_playing(call)
        self._say(call, calls.press(call.delivery, calls.CLAIM_KEY, minutes), ending=True)

    def _destroyed(self, channel_id: str, cause, cause_txt: str) -> None:
        call = self.calls.pop(channel_id, None)
        if call is not None and call.delivery is None:
            return  # a test call
        delivery = call.delivery if call else _delivery_of_channel(channel_id)
        if delivery is None or delivery.channel_id != self.channel.pk:
            return
        detail = f"Asterisk cause {cause}" + (f" {cause_txt}" if cause_txt else "")
        if call is not None:
            outcome = Outcome.NO_KEY
        elif cause in BUSY_CAUSES:
            outcome = Outcome.BUSY
        elif cause in NO_ANSWER_CAUSES:
            outcome = Outcome.NO_ANSWER
        else:
            outcome = Outcome.FAILED
        calls.ended(delivery, outcome, detail)

    def tick(self) -> None:
        """Calls whose wait for a key ran out: the minutes taken as they are, or goodbye."""
        now = time.monotonic()
        for call in list(self.calls.values()):
            if call.wait_until is None or call.wait_until > now:
                continue
            call.wait_until = None
            if call.minutes is not None:
                self._claim(call)
            else:
                self._hang_up(call)

    # --- what the call plays ---------------------------------------------------------------

    def _speech(self, name: str) -> list[str]:
        if self.transport.config.get("tts_url"):
            return self.transport.media(calls.SAID[name])
        return list(CORE_SOUNDS[name])

    def _say(self, call: Call, name: str, ending: bool = False) -> None:
        call.ending = ending
        self._play(call, self._speech(name))

    def _play(self, call: Call, media: list[str]) -> None:
        call.playback = uuid.uuid4().hex
        self.transport.rest("POST", f"/channels/{call.channel_id}/play",
                            media=",".join(media), playbackId=call.playback)  # fmt: skip

    def _stop_playing(self, call: Call) -> None:
        if call.playback:
            playback, call.playback = call.playback, ""
            try:
                self.transport.rest("DELETE", f"/playbacks/{playback}")
            except TransportError:
                pass  # it had just ended

    def _hang_up(self, call: Call) -> None:
        try:
            self.transport.rest("DELETE", f"/channels/{call.channel_id}")
        except TransportError:
            pass  # hung up already


def _delivery_of_channel(channel_id: str):
    """The delivery an originated channel's id names ("alarmbroker-<delivery id>-<random>")."""
    parts = channel_id.split("-")
    if len(parts) != 3 or parts[0] != "alarmbroker" or not parts[1].isdigit():
        return None
    return calls.call_delivery(int(parts[1]))


def listen(stop: threading.Event, recheck_seconds: float = 30.0) -> None:
    """Listen to every enabled ARI channel, each in a thread of its own, following changes to
    them (one added, disabled or reconfigured), until `stop` is set."""
    running: dict[int, tuple[dict, Listener, threading.Thread]] = {}
    while not stop.is_set():
        try:
            _follow(running)
        except Exception:  # noqa: BLE001 (the database away: look again later)
            log.exception("ARI channels could not be read")
        stop.wait(recheck_seconds)
    for _, listener, thread in running.values():
        listener.stop()
        thread.join(timeout=5)


def _follow(running: dict) -> None:
    """Start a listener for each enabled ARI channel not listened to, stop those of channels
    gone, disabled or changed (and those whose thread ended)."""
    close_old_connections()
    wanted = {c.pk: c for c in NotificationChannel.objects.filter(kind="ari", enabled=True)}
    for pk, (config, listener, thread) in list(running.items()):
        if pk not in wanted or wanted[pk].config != config or not thread.is_alive():
            listener.stop()
            thread.join(timeout=5)
            del running[pk]
    for pk, channel in wanted.items():
        if pk not in running:
            listener = Listener(channel)
            thread = threading.Thread(target=listener.run, name=f"ari-{pk}", daemon=True)
            thread.start()
            running[pk] = (dict(channel.config), listener, thread)
