"""Phone calls: Twilio Voice, and a site's own PBX through Asterisk's REST interface (ARI).

Sending a call only places it: the delivery is sent once the provider took the call. What the
call then does (the script read, a key pressed, busy, no answer, voicemail) arrives later, as
Twilio's callbacks (responders/calls) or as ARI's events (responders/ari); those record the
call's outcome on the delivery, and only a key press acknowledges.
"""

import uuid
from urllib.parse import quote
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse

from core.tokens import signed

from .base import Field, Transport, answered, http, json_of

CALL_PURPOSE = "call"  # what a call's signed reference is for (core.tokens.signed)
TEST_CALL_END = "This was a test call. No key is needed. Goodbye."


def call_token(delivery_id: int) -> str:
    """The reference a call's callbacks carry: its delivery, signed."""
    return signed(str(delivery_id), CALL_PURPOSE)


class VoiceTransport(Transport):
    reaches = "voice"
    template_dir = "voice"
    ack_link = False  # a key press acknowledges

    def send(self, out):
        # No delivery: the admin's test call, which says what a page says and takes no key.
        return self.call(out) if out.delivery_id is not None else self.test_call(out)


class TwilioVoiceTransport(VoiceTransport):
    label = "Phone calls through Twilio"
    config_fields = (
        Field("account_sid", required=True),
        Field("auth_token", required=True, secret=True),
        Field("from", "phone", required=True, help="The number calls come from."),
        Field("base_url", "url", default="https://api.twilio.com"),
        Field("ring_seconds", "int", default=30, help="How long a call rings unanswered."),
        Field("machine_detection", "bool", default=True,
              help="Tell a voicemail from a person (Twilio's answering machine detection)."),
    )  # fmt: skip

    def call(self, out):
        token = call_token(out.delivery_id)
        base = settings.PUBLIC_BASE_URL.rstrip("/")
        form = {
            "To": out.address,
            "From": self.config["from"],
            "Url": base + reverse("call-twilio", args=[token, "answer"]),
            "Method": "POST",
            "StatusCallback": base + reverse("call-twilio", args=[token, "status"]),
            "StatusCallbackMethod": "POST",
            "Timeout": str(self.config.get("ring_seconds", 30)),
        }
        if self.config.get("machine_detection", True):
            form["MachineDetection"] = "Enable"
        return self._create(form)

    def test_call(self, out):
        text = escape(" ".join(out.message.text.split()))
        twiml = f"<Response><Say>{text}</Say><Say>{TEST_CALL_END}</Say></Response>"
        form = {"To": out.address, "From": self.config["from"], "Twiml": twiml,
                "Timeout": str(self.config.get("ring_seconds", 30))}  # fmt: skip
        return self._create(form)

    def _create(self, form: dict):
        sid = self.config["account_sid"]
        url = f"{self.config['base_url'].rstrip('/')}/2010-04-01/Accounts/{sid}/Calls.json"
        response = http("POST", url, data=form, auth=(sid, self.config["auth_token"]))
        return answered(response, json_of(response).get("sid", ""))


class AriTransport(VoiceTransport):
    """Originates a call into the broker's Stasis application; `manage.py listen_ari` (run with
    every other process) plays the script on answer and reads the keys."""

    label = "Phone calls through Asterisk (ARI)"
    config_fields = (
        Field("url", "url", required=True, help="Asterisk's HTTP server, e.g. http://pbx:8088."),
        Field("username", required=True, help="An ARI user (ari.conf)."),
        Field("password", required=True, secret=True),
        Field("app", default="alarmbroker", help="The Stasis application's name."),
        Field("endpoint", default="PJSIP/{number}",
              help="The endpoint to ring; {number} is the person's extension, else their phone "
              "(PJSIP/{number}@trunk for a trunk)."),
        Field("caller_id", default="Alarm <0>", help="The caller id the phone shows."),
        Field("ring_seconds", "int", default=30, help="How long a call rings unanswered."),
        Field("tts_url", "url", secret=True,
              help="A text-to-speech server Asterisk plays from: {text} is the script, "
              "URL-encoded (e.g. http://tts:5002/api/tts?text={text}); or use sounds."),
        Field("sounds", "list", default=[],
              help="Pre-rendered audio to play instead, as ARI media (sound:custom/alarm)."),
        Field("events_url", "url",
              help="Where the event websocket is, when not at url (a proxy in between)."),
    )  # fmt: skip

    @classmethod
    def check_config(cls, config):
        if not config.get("tts_url") and not config.get("sounds"):
            raise ValidationError("Set tts_url (text to speech) or sounds (pre-rendered audio).")
        if "{number}" not in config.get("endpoint", "{number}"):
            raise ValidationError("'endpoint' must contain {number}.")
        return config

    def address_for(self, person=None) -> str:
        if person is not None:
            return person.extension or person.phone
        return ""

    def endpoint(self, address: str) -> str:
        """An address that is an endpoint already (PJSIP/201) is rung as it is."""
        if "/" in address:
            return address
        return self.config.get("endpoint", "PJSIP/{number}").replace("{number}", address)

    def media(self, text: str) -> list[str]:
        """What to play for this script: the TTS server's rendering of it, or the sounds."""
        if self.config.get("tts_url"):
            return ["sound:" + self.config["tts_url"].replace("{text}", quote(text, safe=""))]
        return list(self.config.get("sounds", []))

    def auth(self) -> tuple[str, str]:
        return self.config["username"], self.config["password"]

    def rest(self, method: str, path: str, **params):
        url = self.config["url"].rstrip("/") + "/ari" + path
        return http(method, url, params=params, auth=self.auth())

    def call(self, out):
        return self._originate(out, f"delivery,{call_token(out.delivery_id)}", out.delivery_id)

    def test_call(self, out):
        return self._originate(out, "test", "test")

    def _originate(self, out, args: str, name) -> object:
        channel_id = f"alarmbroker-{name}-{uuid.uuid4().hex[:8]}"
        response = self.rest(
            "POST", "/channels",
            endpoint=self.endpoint(out.address), app=self.config.get("app", "alarmbroker"),
            appArgs=args, channelId=channel_id,
            callerId=self.config.get("caller_id", "Alarm <0>"),
            timeout=str(self.config.get("ring_seconds", 30)),
        )  # fmt: skip
        return answered(response, json_of(response).get("id", channel_id))

    def events_url(self) -> str:
        base = self.config.get("events_url") or self.config["url"]
        base = base.rstrip("/").replace("https://", "wss://").replace("http://", "ws://")
        app = quote(self.config.get("app", "alarmbroker"))
        return f"{base}/ari/events?app={app}&subscribeAll=false"
