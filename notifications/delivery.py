"""Deliveries: one row per (alarm, event, step, round, target, method), then its attempts.

An attempt claims its row (status `sending`, attempts + 1, a lease in `next_attempt_at`) and
commits before calling the transport, so no lock is held across the network. A worker that dies
mid-send leaves the row `sending`; once the lease runs out the sweeper tries it again, at most
DELIVERY_MAX_ATTEMPTS times in all.

A row whose task waits in the queue carries `queued_until`: the sweeper leaves it to that task
until then (REQUEUE_AFTER_SECONDS past its time), so a worker that is behind is not handed the
same delivery again and again. A task that could not be published, or a queue that Redis lost,
frees the row for the sweeper at once. A retry or a wait queued with a countdown has no lease:
a worker holds such a task until its time and may die with it.

Follow-ups (acknowledged, resolved, cancelled) go to the channels a step posted to. Deliveries to
an `ordered` channel for one alarm go out one at a time, and a follow-up waits for the posts
before it, so a ticket is created once before it is noted and closed. A ticket or an upstream
alarm (`keeps_record`) is still made when the alarm was acknowledged before it went out.
"""

import logging
import random
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from alarms import board
from alarms.acklinks import issue_ack_link
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import record, written_together
from core import liveness, logs
from core.bulk_sql import update_many
from core.config_cache import kept
from core.deferred_writes import Together
from core.task_queue import RECOVERY_QUEUE, enqueue, lease_until, release, unleased
from devices.models import Person
from observability import instruments

from . import attempts, sent_marks
from .messages import build_message, sample_alarm
from .models import Delivery, DeliveryAttempt, NotificationChannel
from .transports import CHANNEL_KINDS, PERSON_METHODS, gateway_kinds, transport_class
from .transports.base import NOTIFY, RESOLVED, TEST, Outgoing, Sent, TransportError
from .transports.email import EmailTransport

log = logging.getLogger(__name__)

Status = Delivery.Status
Outcome = DeliveryAttempt.Outcome
BUSY = (Status.PENDING, Status.SENDING)
# What every attempt's outcome sets on the row.
RESULT_FIELDS = ["latency_ms", "provider_status", "error", "updated_at"]


def gateway_for(method: str) -> NotificationChannel | None:
    """The enabled channel that carries this person method (the first by name)."""
    return (
        NotificationChannel.objects.filter(kind__in=gateway_kinds(method), enabled=True)
        .order_by("name")
        .first()
    )


def transport_for(channel: NotificationChannel | None):
    """A channel's transport; email to a person needs no channel (Django's mail settings)."""
    return channel.transport() if channel else EmailTransport({})


def person_targets(person: Person, methods: list[str], gateways: dict):
    """(method, gateway, address) for each of the methods that can go out to this person now:
    email needs no channel, the others an enabled gateway (`gateways` keeps each method's, so
    it is looked up once). The address is '' when the person has none for the method."""
    for method in methods:
        if method not in gateways:
            gateways[method] = gateway_for(method)
        gateway = gateways[method]
        if gateway is None and method != "email":
            continue
        yield method, gateway, transport_for(gateway).address_for(person)


def create_for_step(
    alarm, step: dict, index: int, round_: int, take_first: bool = False
) -> tuple[list[Delivery], "Claimed | None"]:
    """Create this step's deliveries (inside the escalation transaction) and return them all;
    the caller sends or queues the pending ones. With `take_first`, the first is written
    taken when it can be (`take_unwritten`), and returned taken, to be sent. Inside
    `created_together` they may be inserted only as that block ends."""
    rows = []
    known = kept("step targets", _no_targets)  # shared: read-only, filled as steps name them
    gateways = known["gateways"]  # method -> its gateway
    for person in _rows(known[Person], Person, step["person_ids"], active=True):
        for method, gateway, address in person_targets(person, step["methods"], gateways):
            rows.append(
                Delivery(person=person, channel=gateway, address=address,
                         target=f"person:{person.pk}", method=method)
            )  # fmt: skip
    for channel in _rows(known[NotificationChannel], NotificationChannel, step["channel_ids"],
                         enabled=True):  # fmt: skip
        rows.append(
            Delivery(channel=channel, address=channel.transport().address_for(None),
                     target=f"channel:{channel.pk}", method=channel.kind)
        )  # fmt: skip
    now = timezone.now()
    rows = [row for row in rows if row.address]
    for row in rows:
        row.alarm, row.step, row.round, row.next_attempt_at = alarm, index, round_, now
        row.cycle = alarm.reopen_count
        row.queued_until = lease_until(now)  # queued (or taken) once this commits
    taken = take_unwritten(rows[0]) if take_first and rows else None
    if rows and (taken or not take_first) and _new_rows.add(*rows):
        return rows, taken  # inserted as the batch ends; nothing needs them before
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
    return rows, taken


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


def on_transition(alarm, event: str) -> None:
    """Inside an ACK/resolve/cancel transaction: stop what has not gone out yet, and queue a
    follow-up to each channel that a step posted to and that wants this event."""
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
                Delivery(alarm=alarm, cycle=alarm.reopen_count, event=event, step=0, round=0,
                         channel=channel,
                         target=f"channel:{channel.pk}", method=channel.kind,
                         address=transport.address_for(None), next_attempt_at=now,
                         queued_until=lease_until(now))
            )  # fmt: skip
    if rows:
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        pending = Delivery.objects.filter(
            alarm=alarm, cycle=alarm.reopen_count, event=event, status=Status.PENDING
        )
        enqueue_on_commit(list(pending.values_list("pk", flat=True)))


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


def record_kinds() -> list[str]:
    """Channel kinds whose post is a record (a ticket, an upstream alarm): it is still made
    when the alarm was acknowledged or closed before it went out, and then updated."""
    return [kind for kind in CHANNEL_KINDS if transport_class(kind).keeps_record]


def outbox_kinds() -> list[str]:
    """Channel kinds that keep a remote record in step and never give up on it (`outbox`)."""
    return [kind for kind in CHANNEL_KINDS if transport_class(kind).outbox]


def probe_outboxes() -> int:
    """For each outbox channel whose messages all wait out their backoff (its provider
    failed), its oldest message goes now, at most every OUTBOX_PROBE_SECONDS: the provider's
    return is seen within seconds, not a backoff later, and the message it then accepts
    brings the others forward (`_wake_waiting`). Return how many were brought forward."""
    now = timezone.now()
    probe = timedelta(seconds=settings.OUTBOX_PROBE_SECONDS)
    unfinished = Delivery.objects.filter(person=None, channel__kind__in=outbox_kinds(),
                                         status__in=BUSY)  # fmt: skip
    waiting = unfinished.filter(status=Status.PENDING, attempts__gt=0)
    probed = []
    for channel_id in set(waiting.values_list("channel_id", flat=True)):
        trying = unfinished.filter(channel_id=channel_id).filter(
            Q(status=Status.SENDING) | Q(next_attempt_at__lte=now + probe)
        )
        oldest = waiting.filter(channel_id=channel_id).order_by("pk").first()
        if oldest and not trying.exists() and oldest.updated_at <= now - probe:
            probed.append(oldest.pk)
    if probed:
        with transaction.atomic():
            _queue_at(probed, now)
    return len(probed)


def enqueue_on_commit(ids: list[int], countdown: float | None = None) -> None:
    """Queue these deliveries once the current transaction commits (which set their
    `queued_until`)."""
    if ids:
        transaction.on_commit(lambda: _publish(ids, countdown))


def enqueue_rows_on_commit(rows: list[Delivery]) -> None:
    """As `enqueue_on_commit`, for rows that may be inserted only as their batch ends: their
    ids are read at the commit."""
    if rows:
        transaction.on_commit(lambda: _publish([row.pk for row in rows]))


def _queue_at(ids: list[int], at) -> None:
    """Inside a transaction: these pending deliveries go at `at`, queued once it commits. Due
    now, their task waits in the queue, which the lease tells the sweeper; due later, a worker
    holds the countdown task and may die with it, so they carry no lease."""
    now = timezone.now()
    if at <= now:
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=at, queued_until=lease_until(at))
        enqueue_on_commit(ids)
    else:
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=at, queued_until=None)
        enqueue_on_commit(ids, countdown=(at - now).total_seconds())


def _publish(ids: list[int], countdown: float | None = None, queue: str | None = None) -> None:
    task = "notifications.tasks.deliver"
    lost = [pk for pk in ids if not enqueue(task, pk, countdown=countdown, queue=queue)]
    if lost:
        release(Delivery.objects.filter(pk__in=lost), "queued_until")


def _lease() -> timedelta:
    return timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS * 3 + 30)


def backoff_seconds(attempts: int, retry_after: float | None, longest: float = 3600.0) -> float:
    """Exponential backoff with jitter, so many failed deliveries do not return in one burst,
    up to `longest`; a provider's Retry-After is honoured, but never parks a delivery for more
    than an hour."""
    ceiling = settings.DELIVERY_RETRY_BASE_SECONDS * 2 ** min(attempts - 1, 30)
    delay = min(ceiling / 2 + random.uniform(0, ceiling / 2), longest)
    if retry_after is not None:
        delay = max(delay, retry_after + random.uniform(0, 1))
    return min(delay, 3600.0)


def attempt(delivery_id: int) -> str | None:
    """Try to send one delivery once; return its new status, or None if it was not ours to try."""
    return send(_claim(delivery_id))


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one attempt, and what its transport is to be given."""

    delivery: Delivery
    transport: object
    out: Outgoing


def _unfinished_locked(ids) -> list[Delivery]:
    """These deliveries, if pending or sending, locked (those another transaction holds are
    left to it), with what their message needs."""
    return list(
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("alarm", "alarm__site", "alarm__room", "alarm__person", "person")
        .select_related("alarm__device", "channel")
        .filter(pk__in=ids, status__in=BUSY)
    )


def _claim(delivery_id: int) -> Claimed | None:
    with transaction.atomic():
        delivery = next(iter(_unfinished_locked([delivery_id])), None)
        if delivery is None or (
            delivery.next_attempt_at and delivery.next_attempt_at > timezone.now()
        ):
            return None
        return take(delivery)


def take(delivery: Delivery) -> Claimed | None:
    """Take a due delivery for one attempt, inside the caller's transaction (which locked its
    row, or made it), or say why not (closed alarm, a post still ahead). `send` it after
    the commit: no lock is held across the network."""
    now = timezone.now()
    alarm, transport = delivery.alarm, transport_for(delivery.channel)
    if delivery.status == Status.SENDING and (earlier := sent_marks.taken_before(delivery)):
        # Its sender died after the provider took it, before recording that: record it now.
        _record_sent([(Claimed(delivery, transport, None), earlier)])
        return None
    keeps_record = transport.keeps_record and not delivery.person_id
    if delivery.event == NOTIFY and alarm.status != "triggered" and not keeps_record:
        return _give_up(delivery, f"not sent: the alarm was {alarm.status} first")
    if delivery.event != NOTIFY or transport.ordered:
        ahead = _ahead_of(delivery)
        if ahead is not None:
            return _defer(delivery, ahead, now)
        if delivery.event != NOTIFY and not _was_posted(delivery):
            return _give_up(delivery, "not sent: no step ever posted to this channel")
    claimed = _taken(delivery, transport)
    delivery.save(update_fields=TAKEN_FIELDS)
    return claimed


# What taking a delivery changes on it.
TAKEN_FIELDS = ["status", "attempts", "next_attempt_at", "queued_until", "claimed_by", "message",
                "updated_at"]  # fmt: skip


def take_unwritten(delivery: Delivery) -> Claimed | None:
    """Take a step's first message before its row is written, sparing an update: its alarm is
    triggered (the step is running). None for an ordered channel, whose posts wait for the
    ones before (`take` it once written)."""
    transport = transport_for(delivery.channel)
    return None if transport.ordered else _taken(delivery, transport)


def _taken(delivery: Delivery, transport) -> Claimed:
    """Mark the delivery taken for one attempt (the caller writes it) and build its message."""
    alarm = delivery.alarm
    delivery.status = Status.SENDING
    delivery.attempts += 1
    delivery.next_attempt_at = timezone.now() + _lease()
    delivery.queued_until = None  # its task has run: only the lease holds it now
    delivery.claimed_by = liveness.process_name()  # ...or this process's death
    ack_url = ""
    if delivery.event == NOTIFY and transport.ack_link:
        ack_url = issue_ack_link(alarm, person=delivery.person, channel=_posted_to(delivery))
    message = build_message(
        alarm, transport, event=delivery.event, step=delivery.step, round_=delivery.round,
        cycle=delivery.cycle, ack_url=ack_url, channel=delivery.channel,
    )  # fmt: skip
    delivery.message = transport.redact(message.stored_text())
    ref = alarm.external_refs.get(_ref_key(delivery), {}) if delivery.channel_id else {}
    out = Outgoing(alarm, delivery.event, message, delivery.address, delivery.person, ref,
                   key=delivery.idempotency_key())  # fmt: skip
    return Claimed(delivery, transport, out)


def send(claimed: Claimed | None) -> str | None:
    """Call the transport for a delivery taken (and committed) and record what came of it;
    return the delivery's new status, or None when there was nothing to send."""
    if claimed is None:
        return None
    with logs.about_alarm(claimed.delivery.alarm_id):
        sent = _call(claimed)
    if sent:
        _record_sent([(claimed, sent)])
    return claimed.delivery.status


# How long deliveries taken together are sent one after another before the rest are handed to
# the queue: well under a lease, and short, since a slow provider makes each send take up to a
# transport timeout while the task holds a worker process that a due step may be waiting for.
SEND_TOGETHER_SECONDS = 1.0
# Messages sent one after another are recorded this many at a time, in one transaction. A
# worker that dies in between sends those not yet recorded again once their lease runs out.
RECORD_TOGETHER = 10


def send_taken(taken: list[Claimed]) -> None:
    """Send deliveries taken together, one after another. Once that has taken longer than
    SEND_TOGETHER_SECONDS (a slow provider), the rest go back to the queue untried, for any
    worker process: each was taken with a lease, and must not be sent after it runs out."""
    started, done = time.monotonic(), []
    try:
        for n, claimed in enumerate(taken):
            if n and time.monotonic() - started > SEND_TOGETHER_SECONDS:
                _give_back(taken[n:])
                return
            with logs.about_alarm(claimed.delivery.alarm_id):
                if sent := _call(claimed):
                    done.append((claimed, sent))
            if len(done) == RECORD_TOGETHER:
                _record_sent(done)
                done = []
    finally:
        _record_sent(done)


def _give_back(taken: list[Claimed]) -> None:
    now = timezone.now()
    ids = [claimed.delivery.pk for claimed in taken]
    Delivery.objects.filter(pk__in=ids, status=Status.SENDING).update(
        status=Status.PENDING,
        attempts=F("attempts") - 1,
        next_attempt_at=now,
        queued_until=lease_until(now),
    )
    log.warning("%d deliveries handed to the queue: sending is slow", len(ids))
    _publish(ids)


def _call(claimed: Claimed) -> Sent | None:
    """Call the transport: what it sent, to be recorded (`_record_sent`); None when it failed,
    which is recorded here."""
    delivery, transport, out = claimed.delivery, claimed.transport, claimed.out
    started = time.monotonic()
    try:
        transport.config = transport.clean_config(transport.config)
        sent = transport.send(out)
    except ValidationError as exc:
        error = TransportError(f"invalid configuration: {' '.join(exc.messages)}", permanent=True)
    except TransportError as exc:
        exc.message = out.message.scrub(exc.message)
        error = exc
    except Exception as exc:  # noqa: BLE001 (a transport bug must not lose the delivery)
        log.error("transport %s crashed: %s", delivery.method, transport.redact(_trace(exc)))
        error = TransportError(f"internal error: {exc.__class__.__name__}")
    else:
        delivery.latency_ms, delivery.sent_at = _elapsed_ms(started), timezone.now()
        delivery.response = _stored(transport, out.message.scrub(sent.response))
        sent_marks.remember(delivery, sent)
        return sent
    _record_failure(delivery, transport, error, started)
    return None


def _trace(exc: Exception) -> str:
    return "".join(traceback.format_exception(exc))


def _posted_to(delivery: Delivery):
    return None if delivery.person_id else delivery.channel


def _ref_key(delivery: Delivery) -> str:
    return f"channel:{delivery.channel_id}"


def _ahead_of(delivery: Delivery) -> Delivery | None:
    """An earlier delivery to the same channel for this alarm that has not finished."""
    return (
        Delivery.objects.filter(
            alarm_id=delivery.alarm_id,
            channel_id=delivery.channel_id,
            person=None,
            pk__lt=delivery.pk,
            status__in=BUSY,
        )  # fmt: skip
        .order_by("pk")
        .first()
    )


def _was_posted(delivery: Delivery) -> bool:
    return Delivery.objects.filter(
        alarm_id=delivery.alarm_id, cycle=delivery.cycle, channel_id=delivery.channel_id,
        person=None, event=NOTIFY, status=Status.SENT,
    ).exists()  # fmt: skip


def _defer(delivery: Delivery, ahead: Delivery, now) -> None:
    """Wait for the delivery ahead; this costs no attempt."""
    wake = max(ahead.next_attempt_at or now, now) + timedelta(seconds=1)
    delivery.status, delivery.next_attempt_at = Status.PENDING, wake
    delivery.queued_until = None  # a countdown task: a worker holds it and may die with it
    delivery.save(update_fields=["status", "next_attempt_at", "queued_until", "updated_at"])
    enqueue_on_commit([delivery.pk], countdown=(wake - now).total_seconds())


def _wake_next(delivery: Delivery) -> None:
    """A post to an ordered channel finished: the one waiting behind it may go now."""
    if delivery.person_id or not (
        delivery.channel and transport_class(delivery.channel.kind).ordered
    ):
        return
    waiting = (
        Delivery.objects.filter(
            alarm_id=delivery.alarm_id,
            channel_id=delivery.channel_id,
            person=None,
            pk__gt=delivery.pk,
            status=Status.PENDING,
        )  # fmt: skip
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is not None:
        _queue_at([waiting], timezone.now())


def _give_up(delivery: Delivery, why: str) -> None:
    delivery.status, delivery.error, delivery.next_attempt_at = Status.CANCELLED, why, None
    delivery.save(update_fields=["status", "error", "next_attempt_at", "updated_at"])
    board.publish(delivery.alarm)
    _wake_next(delivery)
    instruments.delivery_attempted(delivery, instruments.CANCELLED)


def _stored(transport, text: str) -> str:
    """Provider text as kept on the row: redacted whole, then cut."""
    return transport.redact(text)[:500]


# What recording a message sent changes on its delivery.
SENT_FIELDS = [*RESULT_FIELDS, "status", "next_attempt_at", "sent_at", "provider_message_id",
               "response"]  # fmt: skip


def _record_sent(done: list[tuple[Claimed, Sent]]) -> None:
    """Record messages sent (each with what its transport answered) in one transaction: the
    rows with one statement, the timeline entries with another, the figures in one pipeline."""
    if not done:
        return
    # By alarm: a message with a ref locks its alarm, and batches that lock alarms in one
    # order cannot deadlock each other.
    done = sorted(done, key=lambda item: str(item[0].delivery.alarm_id))
    with instruments.together(), transaction.atomic(), written_together():
        for claimed, sent in done:
            delivery, transport = claimed.delivery, claimed.transport
            if sent.ref:
                _keep_ref(delivery, sent.ref)
            delivery.status, delivery.next_attempt_at = Status.SENT, None
            delivery.provider_status = sent.status[:50]
            delivery.provider_message_id = transport.redact(sent.message_id)[:200]
            delivery.error, delivery.updated_at = "", timezone.now()
            what = "Sent to" if delivery.event == NOTIFY else f"Told {delivery.event} to"
            record(
                delivery.alarm,
                AlarmEvent.Kind.DELIVERY_SENT,
                f"{what} {delivery.describe()} ({delivery.address}): {delivery.provider_status}",
                delivery_id=delivery.pk,
            )
            board.publish(delivery.alarm)
            _wake_next(delivery)
            instruments.delivery_attempted(delivery, instruments.SENT, delivery.latency_ms / 1000)
        sent = [claimed.delivery for claimed, _ in done]
        update_many(sent, SENT_FIELDS)
        attempts.record([attempts.of(row, Outcome.SENT, row.response, row.sent_at) for row in sent],
                        sent)  # fmt: skip
        _wake_waiting(sent)
    sent_marks.forget([claimed.delivery for claimed, _ in done])
    for claimed, _ in done:
        with logs.about_alarm(claimed.delivery.alarm_id):
            log.info(
                "sent to %s in %d ms", claimed.delivery.describe(), claimed.delivery.latency_ms
            )


# A provider that failed leaves its messages waiting out their backoff, minutes once it has
# failed a few times. When it accepts messages again, up to this many of those waiting are
# brought forward at once (more each time it accepts more), so that it is not handed its whole
# backlog in one burst...
WAKE_AT_ONCE = 20
# ...each to this long after its last attempt: a message that failed as the provider recovered
# (its request was still hanging) goes soon too, and one that the provider keeps refusing while
# it accepts others is not tried again at the pace of the others.
WAKE_AFTER = timedelta(seconds=5)


def _wake_waiting(sent: list[Delivery]) -> None:
    """Inside the transaction recording these messages sent: messages waiting out their
    backoff with the same providers (a channel or gateway; the mail server for email without
    one) are brought forward, so that after an outage they leave as the provider recovers.
    Not those it rate-limited: it asked for the wait."""
    providers = Q()
    for channel_id, method in {(row.channel_id, row.method) for row in sent}:
        providers |= Q(channel_id=channel_id) if channel_id else Q(channel=None, method=method)
    now = timezone.now()
    waiting = (
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(providers, status=Status.PENDING, attempts__gt=0, next_attempt_at__gt=now)
        .filter(next_attempt_at__gt=F("updated_at") + WAKE_AFTER)  # not brought forward yet
        .exclude(provider_status="HTTP 429")
        .order_by("next_attempt_at")
        .values_list("pk", "updated_at")[:WAKE_AT_ONCE]
    )
    woken = {}  # when -> the deliveries to go then (most go now, together)
    for pk, attempted in waiting:
        woken.setdefault(max(now, attempted + WAKE_AFTER), []).append(pk)
    for at, ids in woken.items():
        _queue_at(ids, at)
    if woken:
        count = sum(len(ids) for ids in woken.values())
        log.info("%d messages waiting for a provider that accepts again go sooner", count)


def _keep_ref(delivery: Delivery, ref: dict) -> None:
    """What the provider gave to address this alarm's later updates, kept on the alarm (its
    row lock serialises writers of external_refs)."""
    alarm = Alarm.objects.select_for_update().get(pk=delivery.alarm_id)
    key = _ref_key(delivery)
    alarm.external_refs[key] = {**alarm.external_refs.get(key, {}), **ref}
    alarm.save(update_fields=["external_refs"])


def _record_failure(delivery: Delivery, transport, exc: TransportError, started: float) -> None:
    with transaction.atomic():
        delivery.latency_ms = _elapsed_ms(started)
        delivery.provider_status = exc.status[:50]
        delivery.error = _stored(transport, exc.message)
        outbox = transport.outbox and not delivery.person_id
        final = exc.permanent or (
            not outbox and delivery.attempts >= settings.DELIVERY_MAX_ATTEMPTS
        )
        if final:
            delivery.status = Status.FAILED
            delivery.next_attempt_at = None
            why = "a permanent error" if exc.permanent else f"{delivery.attempts} attempts"
            record(
                delivery.alarm,
                AlarmEvent.Kind.DELIVERY_FAILED,
                f"Failed to reach {delivery.describe()} ({delivery.what()}) after {why}: "
                f"{delivery.error}",
                delivery_id=delivery.pk,
            )
            board.publish(delivery.alarm)
            _wake_next(delivery)
        else:
            longest = settings.OUTBOX_RETRY_MAX_SECONDS if outbox else 3600.0
            delay = backoff_seconds(delivery.attempts, exc.retry_after, longest)
            delivery.status = Status.PENDING
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            enqueue_on_commit([delivery.pk], countdown=delay)  # held by a worker: no lease
            if attempts.on_timeline(delivery.attempts):
                record(
                    delivery.alarm,
                    AlarmEvent.Kind.DELIVERY_RETRIED,
                    f"Attempt {delivery.attempts} to reach {delivery.describe()} "
                    f"({delivery.what()}) failed: {delivery.error}; trying again in {delay:.0f} s",
                    delivery_id=delivery.pk,
                )
        delivery.save(update_fields=[*RESULT_FIELDS, "status", "next_attempt_at"])
        tried = attempts.of(delivery, Outcome.FAILED if final else Outcome.RETRIED, delivery.error)
        attempts.record([tried], [delivery])
    outcome = instruments.FAILED if final else instruments.RETRIED
    instruments.delivery_attempted(delivery, outcome, delivery.latency_ms / 1000)
    log.warning("%s to %s: %s", outcome, delivery.describe(), delivery.error)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def retry_overdue(limit: int = 500) -> int:
    """Enqueue deliveries whose task was lost or whose sender died: their time is well past
    and no task of theirs is expected any more."""
    now = timezone.now()
    due = Delivery.objects.filter(status__in=BUSY, next_attempt_at__lte=now - timedelta(seconds=10))
    due = due.filter(unleased("queued_until", now))
    ids = list(due.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    if ids:
        Delivery.objects.filter(pk__in=ids).update(queued_until=lease_until(now))
        _publish(ids)
    return len(ids)


def hand_back_from_dead() -> int:
    """Messages that a worker process which died (`liveness`) was sending are taken again
    now, through the sweeper's own queue, so they do not wait behind a backlog: one the
    provider took is recorded (`sent_marks`), the others go as a new attempt. Tasks it had
    taken from the queue died with it, so every due message's lease ends. Return how many."""
    now = timezone.now()
    sending = Delivery.objects.filter(status=Status.SENDING, next_attempt_at__gt=now)
    sending = sending.exclude(claimed_by="")
    gone = liveness.dead(set(sending.values_list("claimed_by", flat=True).distinct()))
    if not gone:
        return 0
    orphans = list(sending.filter(claimed_by__in=gone).values_list("pk", "attempts", "claimed_by"))
    ids = [pk for pk, _, _ in orphans]
    with transaction.atomic():
        lost = [DeliveryAttempt(delivery_id=pk, number=number, at=now, outcome=Outcome.LOST,
                                answer=f"no answer: worker process {by} died while sending")
                for pk, number, by in orphans]  # fmt: skip
        DeliveryAttempt.objects.bulk_create(lost)
        # Still sending: taken again, one the provider took is recorded, not sent again.
        Delivery.objects.filter(pk__in=ids, status=Status.SENDING).update(
            next_attempt_at=now, queued_until=lease_until(now)
        )
        release(Delivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
                .exclude(pk__in=ids), "queued_until")  # fmt: skip
    _publish(ids, queue=RECOVERY_QUEUE)
    log.warning("worker process %s died: %d messages it was sending go again",
                ", ".join(sorted(gone)), len(ids))  # fmt: skip
    return len(ids)


def forget_queued() -> None:
    """The queue was lost: no delivery's task is waiting any more."""
    release(Delivery.objects.all(), "queued_until")


def send_test(*, channel: NotificationChannel | None = None, person: Person | None = None):
    """Send a test message now (the admin's action) and return [(what, answer, ok)].

    A channel that opens something (a ticket, an incident, an upstream alarm) is sent the
    sample alarm's resolve right after, so the test leaves nothing open. Nothing is stored.
    """
    alarm = sample_alarm()
    if channel is not None:
        results = []
        transport = channel.transport()
        sent = _test_one(
            results, channel.name, transport, alarm, transport.address_for(None), channel
        )
        if sent and transport.test_resolves:
            alarm.status, alarm.resolved_by = "resolved", "test"
            _test_one(results, f"{channel.name} (resolve)", transport, alarm,
                      transport.address_for(None), channel, RESOLVED, sent.ref or {})  # fmt: skip
        return results
    results = []
    for method, label in PERSON_METHODS.items():
        gateway = gateway_for(method)
        if gateway is None and method != "email":
            results.append((label, f"no enabled {label} channel to send through", False))
            continue
        transport = transport_for(gateway)
        address = transport.address_for(person)
        if not address:
            results.append((label, f"{person.name} has no {label} address", False))
            continue
        _test_one(
            results, f"{label} to {address}", transport, alarm, address, gateway, person=person
        )
    return results


def _test_one(results, what, transport, alarm, address, channel, event=TEST, ref=None, person=None):
    message = build_message(alarm, transport, event=event, channel=channel)
    try:
        transport.config = transport.clean_config(transport.config)
        sent = transport.send(Outgoing(alarm, event, message, address, person, ref or {}))
    except ValidationError as exc:
        results.append((what, f"invalid configuration: {' '.join(exc.messages)}", False))
        return None
    except TransportError as exc:
        results.append((what, _stored(transport, exc.message), False))
        return None
    except Exception as exc:  # noqa: BLE001 (shown to the operator, not raised at them)
        log.error("test message crashed: %s", transport.redact(_trace(exc)))
        results.append((what, f"internal error: {exc.__class__.__name__}", False))
        return None
    answer = " ".join(filter(None, [sent.status, sent.message_id and f"id {sent.message_id}",
                                    sent.response[:200]]))  # fmt: skip
    results.append((what, _stored(transport, answer), True))
    return sent
