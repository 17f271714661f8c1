"""What a change of the alarm's state does to its deliveries: an ACK, resolve or cancel stops
what has not gone out, tells the channels a step posted to (a ticket closed, an upstream
alarm cleared) and stands down the people a step paged; a damped reopening tells the people
already paged that it fired again."""

from django.utils import timezone

from core.task_queue import lease_until
from devices.models import Person

from .. import reply_codes
from ..models import BUSY, Delivery, NotificationChannel
from ..transports import record_kinds
from ..transports.base import CLOSING, NOTIFY, STAND_DOWN
from .queueing import enqueue_on_commit
from .targets import person_targets

Status = Delivery.Status


def on_transition(alarm, event: str, actor_person=None) -> None:
    """Inside an ACK/resolve/cancel transaction: stop what has not gone out yet, queue a
    follow-up to each channel that a step posted to and that wants this event, and a
    stand-down to each person paged (but the one who did it); each once per round. A ticket
    or an upstream alarm (`keeps_record`) is still made when the alarm closed before it went
    out."""
    Delivery.objects.filter(alarm=alarm, event=NOTIFY, status=Status.PENDING).exclude(
        person=None, method__in=record_kinds()
    ).update(
        status=Status.CANCELLED,
        error=f"not sent: the alarm was {alarm.status} first",
        next_attempt_at=None,
    )
    posted = Delivery.objects.filter(
        alarm=alarm, cycle=alarm.reopen_count, event=NOTIFY, person=None,
        status__in=[*BUSY, Status.SENT],
    ).values("channel")  # fmt: skip
    now = timezone.now()
    rows = []
    for channel in NotificationChannel.objects.filter(pk__in=posted):
        transport = channel.transport()
        if event in transport.follows_up:
            rows.append(
                Delivery(alarm=alarm, cycle=alarm.reopen_count, event=event, step=0,
                         round=alarm.current_round, channel=channel,
                         target=f"channel:{channel.pk}", method=channel.kind,
                         address=transport.address_for(None), next_attempt_at=now,
                         queued_until=lease_until(now))
            )  # fmt: skip
    if not alarm.policy or alarm.policy.stand_down:
        rows += _stand_downs(alarm, actor_person, now)
    if event in CLOSING:
        reply_codes.release(alarm)
    if rows:
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        pending = Delivery.objects.filter(
            alarm=alarm, cycle=alarm.reopen_count, event__in=[event, STAND_DOWN],
            status=Status.PENDING,
        )  # fmt: skip
        enqueue_on_commit(list(pending.values_list("pk", flat=True)))


def _stand_downs(alarm, actor_person, now) -> list[Delivery]:
    """One stand-down per person and contact point this cycle's steps paged (a message sent,
    or being sent); its unique key (the round too) makes it one per cycle, whether the alarm
    is acknowledged, then resolved, and one more once a late claim escalated it again (a new
    round). A call is stood down by SMS to the same phone: nobody is rung at night to hear
    they need not come."""
    paged = Delivery.objects.filter(
        alarm=alarm, cycle=alarm.reopen_count, event=NOTIFY,
        status__in=[Status.SENDING, Status.SENT],
    ).exclude(person=None).select_related("person")  # fmt: skip
    if actor_person is not None:
        paged = paged.exclude(person=actor_person)
    gateways, rows, seen = {}, [], set()
    for row in paged.order_by("pk"):
        method = "sms" if row.method == "voice" else row.method
        if (row.person_id, method) in seen:
            continue
        seen.add((row.person_id, method))
        for _, gateway, address in person_targets(row.person, [method], gateways):
            if address:
                rows.append(
                    Delivery(alarm=alarm, cycle=alarm.reopen_count, event=STAND_DOWN, step=0,
                             round=alarm.current_round, person=row.person, channel=gateway,
                             address=address,
                             target=f"person:{row.person_id}", method=method,
                             next_attempt_at=now, queued_until=lease_until(now))
                )  # fmt: skip
    return rows


def paged_people(alarm) -> list[tuple[Person, str]]:
    """(person, method) for every message a step of this alarm got to a person."""
    sent = Delivery.objects.filter(alarm=alarm, event=NOTIFY, status=Status.SENT)
    pairs = set(sent.exclude(person=None).values_list("person_id", "method"))
    people = Person.objects.in_bulk({person_id for person_id, _ in pairs})
    return sorted(((people[pk], method) for pk, method in pairs if pk in people),
                  key=lambda pair: (pair[0].name, pair[0].pk, pair[1]))  # fmt: skip


def tell_fired_again(alarm, paged: list[tuple[Person, str]]) -> None:
    """Inside the transaction that reopened the alarm (damped): one message to each person and
    method already paged, as the new cycle's first step, queued once it commits."""
    now, gateways, rows = timezone.now(), {}, []
    for person, method in paged:
        for _, gateway, address in person_targets(person, [method], gateways):
            if address and person.active:
                rows.append(
                    Delivery(alarm=alarm, cycle=alarm.reopen_count, step=0, round=0,
                             person=person, channel=gateway, address=address,
                             target=f"person:{person.pk}", method=method, next_attempt_at=now,
                             queued_until=lease_until(now))
                )  # fmt: skip
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    pending = Delivery.objects.filter(alarm=alarm, cycle=alarm.reopen_count, status=Status.PENDING)
    enqueue_on_commit(list(pending.values_list("pk", flat=True)))
