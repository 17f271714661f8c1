"""The transport registry: one line per channel kind, which also gives the models their choices.

People are reached by their own contact points (PERSON_METHODS); an escalation step names the
methods. SMS and Signal go out through the enabled channel of a kind that `reaches` them (the
gateway); email works without one, through Django's mail settings. Channels are posted to.
"""

from django.utils.module_loading import import_string

PERSON_METHODS = {"email": "Email", "sms": "SMS", "signal": "Signal", "voice": "Phone call",
                  "ntfy": "Push (ntfy)", "gotify": "Push (Gotify)",
                  "webpush": "Push (browser)"}  # fmt: skip
# A step's method that stands for each person's own rules (`devices.NotificationRule`).
PERSONAL = "personal"

_T = "notifications.transports."
CHANNEL_KINDS = {
    "email": ("Email (SMTP)", _T + "email.EmailTransport"),
    "sms_http": ("SMS through an HTTP gateway", _T + "sms_http.SmsHttpTransport"),
    "twilio": ("SMS through Twilio", _T + "twilio.TwilioTransport"),
    "signal": ("Signal (signal-cli-rest-api)", _T + "signal.SignalTransport"),
    "ntfy": ("Push through ntfy", _T + "push.NtfyTransport"),
    "gotify": ("Push through Gotify", _T + "push.GotifyTransport"),
    "webpush": ("Web Push to the responder page", _T + "webpush.WebPushTransport"),
    "twilio_voice": ("Phone calls through Twilio", _T + "voice.TwilioVoiceTransport"),
    "ari": ("Phone calls through Asterisk (ARI)", _T + "voice.AriTransport"),
    "zammad": ("Zammad ticket", _T + "zammad.ZammadTransport"),
    "slack": ("Slack incoming webhook", _T + "chat.SlackTransport"),
    "teams": ("Microsoft Teams incoming webhook", _T + "chat.TeamsTransport"),
    "discord": ("Discord webhook", _T + "chat.DiscordTransport"),
    "pagerduty": ("PagerDuty Events API v2", _T + "pagerduty.PagerDutyTransport"),
    "webhook": ("Signed JSON webhook", _T + "webhook.WebhookTransport"),
    "cap": ("CAP 1.2 alerts (signed XML)", _T + "cap.CapTransport"),
    "upstream": ("Upstream alarm broker", _T + "upstream.UpstreamTransport"),
}


def choices(registry: dict) -> list[tuple[str, str]]:
    return [
        (kind, value if isinstance(value, str) else value[0]) for kind, value in registry.items()
    ]


def transport_class(kind: str):
    if kind not in CHANNEL_KINDS:
        raise KeyError(f"no transport for {kind!r}")
    return import_string(CHANNEL_KINDS[kind][1])


def gateway_kinds(method: str) -> list[str]:
    """The channel kinds that can carry this person method."""
    return [kind for kind in CHANNEL_KINDS if transport_class(kind).reaches == method]


def record_kinds() -> list[str]:
    """Channel kinds whose post is a record (a ticket, an upstream alarm): it is still made
    when the alarm was acknowledged or closed before it went out, and then updated."""
    return [kind for kind in CHANNEL_KINDS if transport_class(kind).keeps_record]


def outbox_kinds() -> list[str]:
    """Channel kinds that keep a remote record in step and never give up on it (`outbox`)."""
    return [kind for kind in CHANNEL_KINDS if transport_class(kind).outbox]
