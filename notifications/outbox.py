"""What waits for the channels that keep a remote record in step with an alarm (an upstream
broker, Zammad, PagerDuty: `Transport.outbox`), channel by channel: how many messages, since
when, and since when its provider has been failing."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, Q

from .models import BUSY, Delivery
from .transports import outbox_kinds


@dataclass(frozen=True)
class Backlog:
    channel_id: int
    channel: str
    kind: str
    waiting: int  # messages not yet sent (pending or being sent)
    oldest: datetime  # when the oldest of them was made
    failing_since: datetime | None  # the oldest of them that its provider refused, if any
    last_error: str

    def as_dict(self) -> dict:
        return {
            "channel": self.channel,
            "kind": self.kind,
            "waiting": self.waiting,
            "oldest": self.oldest.isoformat(),
            "failing_since": self.failing_since.isoformat() if self.failing_since else None,
            "last_error": self.last_error,
        }


def unfinished():
    """The outbox channels' messages not yet taken (pending or being sent)."""
    return Delivery.objects.filter(person=None, channel__kind__in=outbox_kinds(), status__in=BUSY)


def backlogs() -> list[Backlog]:
    """Every outbox channel with messages waiting, by name; one query, and one more for each
    channel whose provider is failing."""
    waiting = unfinished()
    refused = Q(status=Delivery.Status.PENDING, attempts__gt=0)
    rows = (
        waiting.values("channel_id", "channel__name", "channel__kind")
        .annotate(
            waiting=Count("id"),
            oldest=Min("created_at"),
            failing_since=Min("created_at", filter=refused),
        )  # fmt: skip
        .order_by("channel__name")
    )
    return [
        Backlog(
            channel_id=row["channel_id"],
            channel=row["channel__name"],
            kind=row["channel__kind"],
            waiting=row["waiting"],
            oldest=row["oldest"],
            failing_since=row["failing_since"],
            last_error=_last_error(waiting, row["channel_id"]) if row["failing_since"] else "",
        )  # fmt: skip
        for row in rows
    ]


def _last_error(unfinished, channel_id: int) -> str:
    latest = unfinished.filter(channel_id=channel_id, attempts__gt=0).order_by("-updated_at")
    return latest.values_list("error", flat=True).first() or ""
