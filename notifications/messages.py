"""What a notification says: rendered per delivery from templates/notifications/<kind>/, or
from the channel's own template when an operator has set one.

Alarm text comes from devices and monitoring systems, so it is untrusted: the template context
holds it already escaped for the transport's format (Slack's mrkdwn, Discord's markdown…), and
HTML templates escape it as Django always does. Templates never see the Alarm object itself.
"""

import functools
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template import Context, Engine, TemplateDoesNotExist, engines
from django.urls import get_script_prefix, reverse
from django.utils import timezone

from alarms.models import Alarm, AlarmEvent, Status
from devices.models import Room, Site

from .transports.base import ACKNOWLEDGED, CLOSING, NOTIFY, STAND_DOWN, TEST

REDACTED_LINK = "<ACK link: not stored>"
REDACTED_TOKEN = "<ACK token: not stored>"
# An answer cut short may end in the token's first characters; this many or more are removed.
TOKEN_PREFIX_CHARS = 8


@dataclass
class Message:
    subject: str
    text: str
    html: str = ""
    payload: dict = field(default_factory=dict)
    ack_url: str = ""

    def stored_text(self) -> str:
        """The message as kept on the Delivery row, its ACK link left out: the link acts as its
        recipient, and the AckLink row keeps only its token's hash for that reason."""
        return self.scrub(f"Subject: {self.subject}\n\n{self.text}")

    def scrub(self, text: str) -> str:
        """Text to store (the message, or a provider's answer or error, which may echo it back)
        without the ACK token in any form: its characters (letters, digits, - and _) stay the
        same URL-encoded, JSON- or HTML-escaped, so removing the token removes every form."""
        token = ack_token(self.ack_url)
        if not token:
            return text
        text = text.replace(self.ack_url, REDACTED_LINK).replace(token, REDACTED_TOKEN)
        for length in range(len(token) - 1, TOKEN_PREFIX_CHARS - 1, -1):
            if text.endswith(token[:length]):
                return text[:-length] + REDACTED_TOKEN
        return text


def ack_token(ack_url: str) -> str:
    """The token of an ACK link (its last path segment); '' when there is no link."""
    token = urlsplit(ack_url).path.rstrip("/").rpartition("/")[2]
    return token if len(token) > TOKEN_PREFIX_CHARS else ""


@functools.cache
def _text_engine() -> Engine:
    """Plain-text templates: no HTML escaping (the transport escapes for its own format)."""
    return Engine(dirs=settings.TEMPLATES[0]["DIRS"], app_dirs=True, autoescape=False)


@receiver(setting_changed)
def _forget_text_engine(*, setting, **kwargs):
    if setting == "TEMPLATES":
        _text_engine.cache_clear()


def compile_template(source: str):
    """A plain-text template from an operator's text; raises TemplateSyntaxError when broken."""
    return _text_engine().from_string(source)


def _render_file(names: list[str], context: dict, *, html: bool) -> str:
    engine = engines["django"].engine if html else _text_engine()
    return engine.select_template(names).render(Context(context, autoescape=html))


def _names(template_dir: str, name: str, severity: str, ext: str = "txt") -> list[str]:
    return [
        f"notifications/{template_dir}/{name}_{severity}.{ext}",
        f"notifications/{template_dir}/{name}.{ext}",
        f"notifications/{name}.{ext}",
    ]


def event_name(event: str, step: int, round_: int) -> str:
    if event == NOTIFY:
        return "alarm.triggered" if step == 0 and round_ == 0 else "alarm.escalated"
    return f"alarm.{event}"


def alarm_facts(alarm) -> dict:
    """The alarm as plain data: the webhook payload and every template's `alarm`."""
    room = alarm.room.name if alarm.room else None
    site = alarm.site.name if alarm.site else None
    return {
        "id": str(alarm.pk),
        "title": alarm.title,
        "message": alarm.message,
        "severity": alarm.severity,
        "status": alarm.status,
        "source": alarm.source,
        "dedup_key": alarm.dedup_key,
        "labels": dict(alarm.labels or {}),
        "occurrences": alarm.occurrences,
        "created_at": alarm.created_at.isoformat(),
        "site": site,
        "room": room,
        "location": " / ".join(filter(None, [site, room])),
        "person": alarm.person.name if alarm.person else None,
        "device": alarm.device.name if alarm.device else None,
        "acknowledged_by": alarm.acknowledged_by or None,
        "resolved_by": alarm.resolved_by or None,
        "reopen_count": alarm.reopen_count,
        "reopened_at": alarm.reopened_at.isoformat() if alarm.reopened_at else None,
        "url": settings.PUBLIC_BASE_URL
        + _admin_path(get_script_prefix()).replace(_ID, str(alarm.pk)),
    }


_ID = "00000000-0000-0000-0000-000000000000"


@functools.cache
def _admin_path(script_prefix: str) -> str:
    """The alarm's admin page, `_ID` standing for its id: `reverse` is costly, and every
    message carries this link."""
    return reverse("admin:alarms_alarm_change", args=[_ID])


def alarm_payload(alarm, *, event: str, step: int = 0, round_: int = 0, cycle: int = 0) -> dict:
    """Our own JSON event (the webhook body), one per lifecycle change."""
    # A reopened alarm's events are new ones: its cycle tells them from the first ones'.
    about = f"{alarm.pk}.{cycle}" if cycle else str(alarm.pk)
    return {
        "event": event_name(event, step, round_),
        # The same on every retry of one delivery, so receivers can drop repeats.
        "event_id": f"{about}:{event}:{round_ + 1}:{step + 1}",
        "alarm": alarm_facts(alarm),
        "escalation": {"step": step + 1, "round": round_ + 1},
        "sent_at": timezone.now().isoformat(),
    }


def _escaped(value, escape):
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape(str(k)): _escaped(v, escape) for k, v in value.items()}
    return value


def clock(value) -> str:
    """A time as a responder reads it on their phone: 03:02, in the broker's time zone."""
    return timezone.localtime(value).strftime("%H:%M") if value else ""


def on_the_way(alarm) -> str:
    """Who said they are coming, with their ETA: "Alice, ETA 10 min (03:12)"."""
    names = []
    for claim in alarm.claims.filter(cycle=alarm.reopen_count):
        if claim.eta_at:
            minutes = max(0, round((claim.eta_at - claim.claimed_at).total_seconds() / 60))
            names.append(f"{claim.name}, ETA {minutes} min ({clock(claim.eta_at)})")
        else:
            names.append(claim.name)
    return "; ".join(names)


def acknowledger(alarm) -> str:
    """Who acknowledged the alarm, by name ("Alice", not "Alice by SMS reply 1a")."""
    entry = alarm.events.filter(kind=AlarmEvent.Kind.ACKNOWLEDGED).select_related("person")
    entry = entry.order_by("-at", "-id").first()
    return entry.person.name if entry and entry.person else alarm.acknowledged_by


def stand_down_text(alarm, code: int | None) -> str:
    """ "#1 acknowledged by Alice at 03:02, on the way: Alice, ETA 10 min (03:12)": what a
    person paged for this alarm reads once it no longer needs them."""
    about = f"#{code} {alarm.title}" if code else alarm.title
    if alarm.status == Status.ACKNOWLEDGED:
        text = f"{about} acknowledged by {acknowledger(alarm)} at {clock(alarm.acknowledged_at)}"
    else:
        text = f"{about} {alarm.status} by {alarm.resolved_by} at {clock(alarm.resolved_at)}"
    coming = on_the_way(alarm) if alarm.status == Status.ACKNOWLEDGED else ""
    return f"{text}, on the way: {coming}" if coming else text


def template_context(
    alarm, transport, *, event, step, round_, ack_url, html=False, reply_code=None
) -> dict:
    facts = alarm_facts(alarm)
    actor = ""
    if event == ACKNOWLEDGED:
        actor = alarm.acknowledged_by
    elif event in CLOSING:
        actor = alarm.resolved_by
    escape = (lambda text: text) if html else transport.escape
    facts["created_at"] = alarm.created_at
    return {
        # A step of a reopened alarm says so: whoever handled it before must look again.
        "fired_again": event == NOTIFY and bool(alarm.reopen_count),
        "alarm": _escaped(facts, escape),
        "event": event,
        "step": step + 1,
        "round": round_ + 1,
        "steps": len(alarm.steps_snapshot or []) or 1,
        "actor": escape(actor or ""),
        "ack_url": ack_url,
        "test": event == TEST,
        "reply_code": reply_code if event == NOTIFY else None,
        "stand_down": escape(stand_down_text(alarm, reply_code)) if event == STAND_DOWN else "",
    }


def build_message(
    alarm, transport, *, event: str = NOTIFY, step: int = 0, round_: int = 0,
    cycle: int = 0, ack_url: str = "", channel=None, reply_code: int | None = None,
) -> Message:  # fmt: skip
    args = {"event": event, "step": step, "round_": round_, "ack_url": ack_url,
            "reply_code": reply_code}  # fmt: skip
    context = template_context(alarm, transport, **args)
    folder, severity = transport.template_dir, alarm.severity
    subject_source = channel.subject_template if channel else ""
    body_source = channel.body_template if channel else ""
    if subject_source:
        subject = compile_template(subject_source).render(Context(context, autoescape=False))
    else:
        subject = _render_file(_names(folder, "subject", severity), context, html=False)
    if body_source:
        text = compile_template(body_source).render(Context(context, autoescape=False))
    else:
        text = _render_file(_names(folder, "body", severity), context, html=False)
    html = ""
    if transport.sends_html and not body_source:
        try:
            html_context = template_context(alarm, transport, **args, html=True)
            html = _render_file(
                _names(folder, "body", severity, "html")[:2], html_context, html=True
            )
        except TemplateDoesNotExist:
            html = ""
    return Message(
        subject=" ".join(subject.split()),
        text=text.strip() + "\n",
        html=html,
        payload=alarm_payload(alarm, event=event, step=step, round_=round_, cycle=cycle),
        ack_url=ack_url,
    )


def sample_alarm():
    """An unsaved alarm for previews and test messages, with text that needs escaping."""
    site = Site(name="Main building")
    now = timezone.now()
    return Alarm(
        id=uuid.uuid4(),
        source="test",
        dedup_key="test",
        title="Test message: emergency key pressed <b>&</b> *not bold*",
        message="This is a test of the notification channel. No action is needed.",
        severity="critical",
        labels={"test": "true"},
        site=site,
        room=Room(name="Room 1.07", site=site),
        created_at=now,
        last_occurrence_at=now,
        steps_snapshot=[{}],
    )
