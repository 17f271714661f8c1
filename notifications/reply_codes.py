"""Reply codes: the number a phone answers an alarm by ("Reply 1a to acknowledge").

A code belongs to one phone number and one open alarm: the smallest number that phone's other
open alarms do not hold, kept while the alarm is open, released when it closes (the row stays,
so a late "1a" can be told what became of #1) and then free for the phone's next alarm.
"""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from alarms.models import OPEN_STATUSES

from .models import Delivery, ReplyCode


def code_for(alarm, person, address: str) -> int | None:
    """The code of this alarm on this phone: the one it holds, or the smallest free one, taken
    now (inside the caller's transaction); None once the alarm is closed. Two alarms paging one
    phone at once may pick the same number: the unique index refuses the second, which takes
    the next."""
    if alarm.status not in OPEN_STATUSES:
        return None
    held = ReplyCode.objects.filter(address=address, released_at=None)
    for _ in range(20):
        open_alarms = held.filter(alarm__status__in=OPEN_STATUSES)
        numbers = dict(open_alarms.values_list("alarm_id", "number"))
        if alarm.pk in numbers:
            held.filter(alarm=alarm).update(paged_at=timezone.now())
            return numbers[alarm.pk]
        number = smallest_free(set(numbers.values()))
        if number >= BUNDLE_FIRST:  # where bundles' codes are: only then ask for them
            number = smallest_free(set(numbers.values()) | _bundle_codes(address))
        try:
            with transaction.atomic():
                ReplyCode.objects.create(address=address, number=number, alarm=alarm,
                                         cycle=alarm.reopen_count, person=person)  # fmt: skip
            return number
        except IntegrityError:
            # Taken meanwhile, by another alarm or by this one's other message; or held by a
            # code a page took as its alarm closed (after the close released them), which
            # holds nothing: it is released here, where it is in the way.
            held.exclude(alarm__status__in=OPEN_STATUSES).update(released_at=timezone.now())
    raise RuntimeError(f"no reply code could be taken for {address}")


def codes_for_many(pages, address: str) -> dict:
    """The code of each of these pages' alarms on this phone (alarm id -> number), those it
    lacks taken in one statement: a bundle carrying a storm's pages. If another page took a
    number meanwhile, each is taken one by one as `code_for` does."""
    held = ReplyCode.objects.filter(address=address, released_at=None,
                                    alarm__status__in=OPEN_STATUSES)  # fmt: skip
    numbers = dict(held.values_list("alarm_id", "number"))
    used = set(numbers.values()) | _bundle_codes(address)
    new, number = [], 0
    for page in pages:
        if page.alarm_id in numbers or page.alarm.status not in OPEN_STATUSES:
            continue
        number = smallest_free(used, number + 1)
        used.add(number)
        numbers[page.alarm_id] = number
        new.append(ReplyCode(address=address, number=number, alarm=page.alarm,
                             cycle=page.alarm.reopen_count, person=page.person))  # fmt: skip
    try:
        with transaction.atomic():
            ReplyCode.objects.bulk_create(new)
    except IntegrityError:
        return {page.alarm_id: code_for(page.alarm, page.person, address) for page in pages}
    held.filter(alarm_id__in=[page.alarm_id for page in pages]).update(paged_at=timezone.now())
    return numbers


def smallest_free(used: set[int], start: int = 1) -> int:
    number = start
    while number in used:
        number += 1
    return number


# A bundle's code (`delivery.bundles`) is 100 or more, and answers for a day.
BUNDLE_FIRST = 100
BUNDLE_HOURS = 24


def _recent_bundles(address: str):
    """Bundles to this phone of the last day, and those being sent."""
    since = timezone.now() - timedelta(hours=BUNDLE_HOURS)
    recent = Q(sent_at__gte=since) | Q(status=Delivery.Status.SENDING)
    return Delivery.objects.filter(recent, address=address).exclude(bundle_code=None)


def _bundle_codes(address: str) -> set[int]:
    return set(_recent_bundles(address).values_list("bundle_code", flat=True))


def bundle_number(address: str) -> int:
    """A code for a bundle to this phone: the smallest from 100 that neither an open alarm's
    code nor a bundle of the last day holds."""
    used = _bundle_codes(address)
    used |= set(ReplyCode.objects.filter(address=address, released_at=None,
                                         alarm__status__in=OPEN_STATUSES)
                .values_list("number", flat=True))  # fmt: skip
    return smallest_free(used, BUNDLE_FIRST)


def bundled_pages(address: str, number: int) -> list:
    """The pages of the latest bundle with this code to this phone (its carrier and the
    pages it carried), each with the alarm and cycle it was about, in the alarms' order."""
    carrier = _recent_bundles(address).filter(bundle_code=number).order_by("-sent_at").first()
    if carrier is None:
        return []
    carried = Delivery.objects.filter(bundled_into=carrier).select_related("alarm")
    return sorted([carrier, *carried], key=lambda page: str(page.alarm_id))


def last_code(alarm, address: str) -> int | None:
    """The code this alarm had on this phone, open or released (for a stand-down)."""
    found = ReplyCode.objects.filter(alarm=alarm, address=address).order_by("-created_at").first()
    return found.number if found else None


def release(alarm) -> None:
    """The alarm closed: its codes are free for the phones' next alarms."""
    ReplyCode.objects.filter(alarm=alarm, released_at=None).update(released_at=timezone.now())


def open_code(address: str, number: int) -> ReplyCode | None:
    return (
        ReplyCode.objects.select_related("alarm")
        .filter(address=address, number=number, released_at=None)
        .filter(alarm__status__in=OPEN_STATUSES)
        .first()
    )


def released_code(address: str, number: int) -> ReplyCode | None:
    """The most recent alarm that held this code on this phone and closed."""
    return (
        ReplyCode.objects.select_related("alarm")
        .filter(address=address, number=number)
        .exclude(released_at=None)
        .order_by("-released_at")
        .first()
    )


def latest_code(address: str) -> ReplyCode | None:
    """The open alarm this phone was paged about last ("ack" with no code)."""
    return (
        ReplyCode.objects.select_related("alarm")
        .filter(address=address, released_at=None, alarm__status__in=OPEN_STATUSES)
        .order_by("-paged_at", "-id")
        .first()
    )
