"""What a notification says: rendered once per delivery from templates/notifications/."""

from dataclasses import dataclass, field

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

REDACTED_LINK = "<ACK link: not stored>"


@dataclass
class Message:
    subject: str
    body: str
    payload: dict = field(default_factory=dict)
    ack_url: str = ""

    def stored_text(self) -> str:
        """The message as kept on the Delivery row; the ACK link only where no mail leaves."""
        text = f"Subject: {self.subject}\n\n{self.body}"
        if self.ack_url and not settings.KEEP_FULL_MESSAGES:
            text = text.replace(self.ack_url, REDACTED_LINK)
        return text


def alarm_payload(alarm, *, step: int, round_: int) -> dict:
    return {
        "event": "alarm.triggered",
        "alarm": {
            "id": str(alarm.pk),
            "title": alarm.title,
            "message": alarm.message,
            "severity": alarm.severity,
            "status": alarm.status,
            "source": alarm.source,
            "dedup_key": alarm.dedup_key,
            "labels": alarm.labels,
            "occurrences": alarm.occurrences,
            "created_at": alarm.created_at.isoformat(),
            "site": alarm.site.name if alarm.site else None,
            "room": alarm.room.name if alarm.room else None,
            "person": alarm.person.name if alarm.person else None,
            "device": alarm.device.name if alarm.device else None,
            "url": settings.PUBLIC_BASE_URL + reverse("admin:alarms_alarm_change", args=[alarm.pk]),
        },
        "escalation": {"step": step + 1, "round": round_ + 1},
    }


def build_message(alarm, *, step: int, round_: int, ack_url: str = "") -> Message:
    context = {"alarm": alarm, "step": step + 1, "round": round_ + 1, "ack_url": ack_url}
    subject = render_to_string("notifications/alarm_subject.txt", context).strip()
    return Message(
        subject=" ".join(subject.split()),
        body=render_to_string("notifications/alarm_body.txt", context),
        payload=alarm_payload(alarm, step=step, round_=round_),
        ack_url=ack_url,
    )
