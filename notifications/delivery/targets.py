"""Whom a step reaches and how: each person by each of the step's methods that can go out to
them now, and each channel it posts to; the step's delivery rows."""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.config_cache import kept
from core.deferred_writes import Together
from core.task_queue import lease_until
from devices.models import Person

from ..models import Delivery, NotificationChannel
from ..transports import gateway_kinds
from ..transports.base import NOTIFY
from . import personal
from .sending import Claimed, take_unwritten, transport_for

Status = Delivery.Status


def gateway_for(method: str) -> NotificationChannel | None:
    """The enabled channel that carries this person method (the first by name)."""
    return (
        NotificationChannel.objects.filter(kind__in=gateway_kinds(method), enabled=True)
        .order_by("name")
        .first()
    )


def person_targets(person: Person, methods: list[str], gateways: dict):
    """(method, gateway, address) for each of the methods that can go out to this person now:
    email needs no channel, the others an enabled gateway (`gateways` keeps each method's, so
    it is looked up once); none the person muted (a STOP reply). The address is '' when the
    person has none for the method."""
    for method in methods:
        if person.muted(method):
            continue
        if method not in gateways:
            gateways[method] = gateway_for(method)
        gateway = gateways[method]
        if gateway is None and method != "email":
            continue
        yield method, gateway, transport_for(gateway).address_for(person)


def reach(person: Person, methods: list[str], severity: str, rules: dict, gateways: dict):
    """How a step with these methods reaches the person (`personal.plan`); `rules`: the
    people's rules, by person (`personal.rules_of`)."""
    return personal.plan(
        person, methods, severity, rules.get(person.pk, ()),
        lambda wanted: person_targets(person, wanted, gateways),
    )  # fmt: skip


def create_for_step(
    alarm, step: dict, index: int, round_: int, take_first: bool = False
) -> tuple[list[Delivery], Claimed | None, list[str]]:
    """Create this step's deliveries (inside the escalation transaction) and return them all,
    with what the timeline should hear of people who cannot be reached; the caller sends or
    queues the pending ones. With `take_first`, the first is written taken when it can be
    (`take_unwritten`), and returned taken, to be sent. Inside `created_together` they may be
    inserted only as that block ends. A person's rules ("personal") write rows due later."""
    rows, notes, delays = [], [], {}
    known = kept("step targets", _no_targets)  # shared: read-only, filled as steps name them
    gateways = known["gateways"]  # method -> its gateway
    people = _rows(known[Person], Person, step["person_ids"], active=True)
    rules = (
        personal.rules_of([p.pk for p in people]) if personal.PERSONAL in step["methods"] else {}
    )
    for person in people:
        ways, said = reach(person, step["methods"], alarm.severity, rules, gateways)
        notes += said
        for way in ways:
            row = Delivery(person=person, channel=way.gateway, address=way.address,
                           target=f"person:{person.pk}", method=way.method)  # fmt: skip
            delays[id(row)] = way.delay_seconds
            rows.append(row)
    for channel in _rows(known[NotificationChannel], NotificationChannel, step["channel_ids"],
                         enabled=True):  # fmt: skip
        rows.append(
            Delivery(channel=channel, address=channel.transport().address_for(None),
                     target=f"channel:{channel.pk}", method=channel.kind)
        )  # fmt: skip
    now = timezone.now()
    rows = [row for row in rows if row.address]
    for row in rows:
        row.alarm, row.step, row.round, row.cycle = alarm, index, round_, alarm.reopen_count
        row.planned_delay = later = delays.get(id(row), 0)
        row.next_attempt_at = now + timedelta(seconds=later)
        # Queued (or taken) once this commits; one due later is held by a worker's countdown.
        row.queued_until = None if later else lease_until(now)
    rows.sort(key=lambda row: row.next_attempt_at)  # stable: the first is due now, if any is
    taken = take_unwritten(rows[0]) if take_first and rows and not rows[0].planned_delay else None
    if rows and (taken or not take_first) and _new_rows.add(*rows):
        return rows, taken, notes  # inserted as the batch ends; nothing needs them before
    try:
        with transaction.atomic():
            Delivery.objects.bulk_create(rows)
    except IntegrityError:  # a step that somehow ran before: add what it lacks, read them all
        if taken:  # written as the others are, to be queued
            taken.delivery.status, taken.delivery.attempts = Status.PENDING, 0
            taken.delivery.next_attempt_at, taken.delivery.queued_until = now, lease_until(now)
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        rows, taken = [], None
    if not rows or any(row.pk is None for row in rows):
        rows = list(
            Delivery.objects.filter(
                alarm=alarm, cycle=alarm.reopen_count, event=NOTIFY, step=index, round=round_
            ).select_related("person", "channel")
        )  # fmt: skip
    for row in rows:
        row.alarm = alarm
    return rows, taken, notes


def planned(row: Delivery) -> str:
    """A step's delivery as the timeline tells it: "Alice by sms in 2 min" for one a person's
    rules made due later."""
    later = getattr(row, "planned_delay", 0)
    return f"{row.describe()} in {round(later / 60)} min" if later >= 30 else row.describe()


_new_rows = Together(Delivery.objects.bulk_create)

# Inside, the deliveries steps create are inserted with one statement as the block ends (a
# drain's batch), unless a step's first must be taken once written (an ordered channel's). A
# step that ran before then breaks the block's insert, and its caller runs each step alone.
created_together = _new_rows.block


def _no_targets() -> dict:
    """What a process keeps of the people, channels and gateways steps name (none yet)."""
    return {Person: {}, NotificationChannel: {}, "gateways": {}}


def _rows(known: dict, model, ids: list[int], **wanted) -> list:
    """The rows with these ids that match `wanted`, in the model's order; `known` keeps the
    rows read before (id -> row, None: gone), as steps name the same ones again and again."""
    if missing := [pk for pk in ids if pk not in known]:
        found = {row.pk: row for row in model.objects.filter(pk__in=missing)}
        known.update({pk: found.get(pk) for pk in missing})
    matching = [known[pk] for pk in ids if known[pk] is not None]
    matching = [row for row in matching if all(getattr(row, k) == v for k, v in wanted.items())]
    return sorted(matching, key=lambda row: (row.name, row.pk))
