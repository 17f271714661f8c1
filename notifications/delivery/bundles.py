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
    """Inside the transaction taking the carrier: its bundle is taken with it; a page it
    carried when it was taken before and does not carry now is on its own again."""
    ids = [page.pk for page in bundle]
    left = Delivery.objects.filter(bundled_into=carrier, status=Status.SENDING).exclude(pk__in=ids)
    _on_their_own(left)
    if not bundle:
        return
    Delivery.objects.filter(pk=carrier.pk).update(bundle_code=carrier.bundle_code)
    Delivery.objects.filter(pk__in=ids).update(
        status=Status.SENDING, bundled_into=carrier, next_attempt_at=carrier.next_attempt_at,
        queued_until=None, claimed_by=carrier.claimed_by, error="",
    )  # fmt: skip


def went(carriers: list[tuple[Delivery, tuple]]) -> None:
    """Inside the transaction recording these messages sent: the pages each carried (those
    its message named, still taken with it) went."""
    named = {page.pk: carrier for carrier, bundle in carriers for page in bundle}
    if not named:
        return
    carried = Delivery.objects.filter(pk__in=list(named), status=Status.SENDING)
    carried = [p for p in carried.select_related("person", "alarm")
               if p.bundled_into_id == named[p.pk].pk]  # fmt: skip
    for page in carried:
        others = sum(1 for carrier in named.values() if carrier.pk == page.bundled_into_id)
        record(page.alarm, AlarmEvent.Kind.DELIVERY_SENT,
               f"Sent to {page.describe()} ({page.address}) in one message with {others} other "
               f"{'message' if others == 1 else 'messages'} held back by {page.held_by}",
               delivery_id=page.pk)  # fmt: skip
    _sent(Delivery.objects.filter(pk__in=[page.pk for page in carried]))


def _sent(pages) -> None:
    pages.update(status=Status.SENT, next_attempt_at=None, sent_at=timezone.now(),
                 provider_status="in a bundle", error="",
                 message="Sent in the message of another page (its bundle).")  # fmt: skip


def _on_their_own(pages) -> None:
    """Pages no carrier takes any more: each goes by itself, now."""
    ids = list(pages.values_list("pk", flat=True))
    if ids:
        Delivery.objects.filter(pk__in=ids).update(
            status=Status.PENDING, bundled_into=None, next_attempt_at=timezone.now(), claimed_by=""
        )
        enqueue_on_commit(ids)


def did_not_go(carrier: Delivery) -> None:
    """Inside the transaction recording the carrier's failed attempt: the pages it carried
    are each on their own again, due now (a permanent failure fails each over by itself)."""
    _on_their_own(Delivery.objects.filter(bundled_into=carrier, status=Status.SENDING))


def went_with_its_bundle(page: Delivery) -> bool:
    """A carried page taken again (its lease ran out): done when its carrier is sent or still
    being sent; otherwise it is on its own again (False: take it)."""
    status = Delivery.objects.filter(pk=page.bundled_into_id).values_list("status", flat=True)
    status = status.first()
    if status == Status.SENT:
        _sent(Delivery.objects.filter(pk=page.pk))
        return True
    if status == Status.SENDING:
        return True
    Delivery.objects.filter(pk=page.pk).update(bundled_into=None)
    page.bundled_into = None
    return False
