"""Pages a limit held back (`throttle`) go out together: the first of them to come due carries
the others in its message, each with its own reply code, and the bundle's code answers them
all ("reply 100a to acknowledge all"). The pages carried are taken with it (status sending,
`bundled_into` it), recorded sent with it, and handed back if it fails: none is dropped, none
is sent twice."""

from dataclasses import replace

from django.utils import timezone

from alarms.models import AlarmEvent
from alarms.timeline import record

from .. import reply_codes
from ..models import Delivery
from ..transports.base import NOTIFY, REPLY_METHODS, STAND_DOWN
from .queueing import enqueue_on_commit

Status = Delivery.Status
LISTED = 10  # held pages named in the message (one SMS holds about ten)


def carrying(message, carrier: Delivery, bundle: list[Delivery]):
    """The carrier's message with the held pages listed after it (their codes, for a method
    replied to, and the bundle's code for all of them)."""
    coded = carrier.method in REPLY_METHODS and carrier.person_id and carrier.event == NOTIFY
    alarms = "alarm" if len(bundle) == 1 else "alarms"
    lines = [f"+{len(bundle)} more {alarms} held back ({carrier.held_by or 'a limit'}):"]
    if carrier.event == STAND_DOWN:
        lines = [f"+{len(bundle)} more {alarms} no longer need you:"]
    # Listed or not, each has its own code, and the bundle's.
    codes = reply_codes.codes_for_many(bundle, carrier.address) if coded else {}
    for page in bundle[:LISTED]:
        alarm = page.alarm
        place = " / ".join(str(part) for part in (alarm.site, alarm.room) if part)
        where = f" @ {place}" if place else ""
        code = codes.get(alarm.pk)
        lines.append(f"- {alarm.severity.upper()} {alarm.title}{where}"
                     + (f" (reply {code}a)" if code else ""))  # fmt: skip
    if len(bundle) > LISTED:
        lines.append(f"…and {len(bundle) - LISTED} more.")
    if coded:
        carrier.bundle_code = reply_codes.bundle_number(carrier.address)
        lines.append(f"Reply {carrier.bundle_code}a to acknowledge all {len(bundle) + 1}, "
                     f"{carrier.bundle_code}r to resolve all.")  # fmt: skip
    return replace(message, text=message.text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")


def take_with(carrier: Delivery, bundle) -> None:
    """Inside the transaction taking the carrier: its bundle is taken with it."""
    if not bundle:
        return
    Delivery.objects.filter(pk=carrier.pk).update(bundle_code=carrier.bundle_code)
    Delivery.objects.filter(pk__in=[page.pk for page in bundle]).update(
        status=Status.SENDING, bundled_into=carrier, next_attempt_at=carrier.next_attempt_at,
        queued_until=None, claimed_by=carrier.claimed_by, error="",
    )  # fmt: skip


def went(sent: list[Delivery]) -> None:
    """Inside the transaction recording these messages sent: the pages they carried went."""
    carriers = {row.pk: row for row in sent}
    carried = Delivery.objects.filter(bundled_into__in=list(carriers), status=Status.SENDING)
    carried = list(carried.select_related("person", "alarm"))
    now = timezone.now()
    for page in carried:
        carrier = carriers[page.bundled_into_id]
        others = sum(1 for p in carried if p.bundled_into_id == carrier.pk)
        record(page.alarm, AlarmEvent.Kind.DELIVERY_SENT,
               f"Sent to {page.describe()} ({page.address}) in one message with {others} other "
               f"{'message' if others == 1 else 'messages'} held back by {page.held_by}",
               delivery_id=page.pk)  # fmt: skip
    if carried:
        Delivery.objects.filter(pk__in=[page.pk for page in carried]).update(
            status=Status.SENT, next_attempt_at=None, sent_at=now, provider_status="in a bundle",
            error="", message="Sent in the message of another page (its bundle).",
        )  # fmt: skip


def did_not_go(carrier: Delivery) -> None:
    """Inside the transaction recording the carrier's failed attempt: the pages it carried
    are each on their own again, due now (a permanent failure fails each over by itself)."""
    carried = Delivery.objects.filter(bundled_into=carrier, status=Status.SENDING)
    ids = list(carried.values_list("pk", flat=True))
    if ids:
        now = timezone.now()
        Delivery.objects.filter(pk__in=ids).update(
            status=Status.PENDING, bundled_into=None, next_attempt_at=now, claimed_by=""
        )
        enqueue_on_commit(ids)


def went_with_its_bundle(page: Delivery) -> bool:
    """A carried page taken again (its lease ran out): done when its carrier is sent or still
    being sent; otherwise it is on its own again (False: take it)."""
    carrier = Delivery.objects.filter(pk=page.bundled_into_id).values_list("status", flat=True)
    status = carrier.first()
    if status == Status.SENT:
        went_alone = Delivery.objects.filter(pk=page.pk)
        went_alone.update(status=Status.SENT, next_attempt_at=None, sent_at=timezone.now(),
                          provider_status="in a bundle")  # fmt: skip
        return True
    if status == Status.SENDING:
        return True
    page.bundled_into = None
    return False
