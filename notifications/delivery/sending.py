"""One attempt at a delivery: claim its row (status `sending`, attempts + 1, a lease), commit,
call the transport with no lock held, and record what came of it: sent, tried again after a
backoff, or failed for good."""

import logging
import random
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alarms import board
from alarms.acklinks import issue_ack_link
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import record, written_together
from core import liveness, logs
from core.bulk_sql import update_many
from core.task_queue import lease_until
from observability import instruments

from .. import attempts, reply_codes, sent_marks
from ..messages import build_message
from ..models import BUSY, Delivery, DeliveryAttempt
from ..transports.base import NOTIFY, REPLY_METHODS, STAND_DOWN, Outgoing, Sent, TransportError
from ..transports.email import EmailTransport
from . import bundles, personal, throttle
from .ordering import ahead_of, defer, posted_to, ref_key, wake_next, wake_waiting, was_posted
from .queueing import enqueue_on_commit, publish, sending_lease

log = logging.getLogger(__name__)

Status = Delivery.Status
Outcome = DeliveryAttempt.Outcome
# What every attempt's outcome sets on the row.
RESULT_FIELDS = ["latency_ms", "provider_status", "error", "updated_at"]
# What taking a delivery changes on it.
TAKEN_FIELDS = ["status", "attempts", "next_attempt_at", "queued_until", "claimed_by", "message",
                "updated_at"]  # fmt: skip
# What recording a message sent changes on its delivery.
SENT_FIELDS = [*RESULT_FIELDS, "status", "next_attempt_at", "sent_at", "provider_message_id",
               "response"]  # fmt: skip
# How long deliveries taken together are sent one after another before the rest are handed to
# the queue: well under a lease, and short, since a slow provider makes each send take up to a
# transport timeout while the task holds a worker process that a due step may be waiting for.
SEND_TOGETHER_SECONDS = 1.0
# Messages sent one after another are recorded this many at a time, in one transaction. A
# worker that dies in between sends those not yet recorded again once their lease runs out.
RECORD_TOGETHER = 10


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one attempt, and what its transport is to be given."""

    delivery: Delivery
    transport: object
    out: Outgoing
    bundle: tuple = ()  # pages held back for the same contact point, carried in its message


def transport_for(channel):
    """A channel's transport; email to a person needs no channel (Django's mail settings)."""
    return channel.transport() if channel else EmailTransport({})


def attempt(delivery_id: int) -> str | None:
    """Try to send one delivery once; return its new status, or None if it was not ours to try."""
    return send(claim(delivery_id))


def claim(delivery_id: int) -> Claimed | None:
    """Take the delivery in a transaction of its own when it is due and nobody holds it."""
    with transaction.atomic():
        delivery = next(iter(_unfinished_locked([delivery_id])), None)
        if delivery is None or not due(delivery):
            return None
        return take(delivery)


def due(delivery: Delivery) -> bool:
    return not delivery.next_attempt_at or delivery.next_attempt_at <= timezone.now()


def takes_in_step(delivery: Delivery) -> bool:
    """Whether the step that wrote it may take it in its own transaction: due now, and no
    limit may hold it (that is counted in a transaction of its own)."""
    return due(delivery) and not throttle.may_hold(delivery)


def _unfinished_locked(ids) -> list[Delivery]:
    """These deliveries, if pending or sending, locked (those another transaction holds are
    left to it), with what their message needs."""
    return list(
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("alarm", "alarm__site", "alarm__room", "alarm__person", "person")
        .select_related("alarm__device", "channel")
        .filter(pk__in=ids, status__in=BUSY)
    )


def take(delivery: Delivery) -> Claimed | None:
    """Take a due delivery for one attempt, inside the caller's transaction (which locked its
    row, or made it), or say why not (closed alarm, a post still ahead). `send` it after
    the commit: no lock is held across the network."""
    now = timezone.now()
    alarm, transport = delivery.alarm, transport_for(delivery.channel)
    if delivery.status == Status.SENDING and (earlier := sent_marks.taken_before(delivery)):
        # Its sender died after the provider took it, before recording that: record it now.
        record_sent([(Claimed(delivery, transport, None), earlier)])
        return None
    if delivery.bundled_into_id and bundles.went_with_its_bundle(delivery):
        return None
    keeps_record = transport.keeps_record and not delivery.person_id
    if delivery.event == NOTIFY and alarm.status != "triggered" and not keeps_record:
        return give_up(delivery, f"not sent: the alarm was {alarm.status} first")
    if delivery.event == STAND_DOWN and alarm.status == "triggered":
        return give_up(delivery, "not sent: the alarm escalates again")
    if delivery.person_id is None and (delivery.event != NOTIFY or transport.ordered):
        ahead = ahead_of(delivery)
        if ahead is not None:
            return defer(delivery, ahead, now)
        if delivery.event != NOTIFY and not was_posted(delivery):
            return give_up(delivery, "not sent: no step ever posted to this channel")
    if (held := throttle.check(delivery, now)) is not None:
        return throttle.hold(delivery, held)
    claimed = _taken(delivery, transport, throttle.held_with(delivery))
    delivery.save(update_fields=TAKEN_FIELDS)
    bundles.take_with(delivery, claimed.bundle)
    return claimed


def take_unwritten(delivery: Delivery) -> Claimed | None:
    """Take a step's first message before its row is written, sparing an update: its alarm is
    triggered (the step is running). None for an ordered channel, whose posts wait for the
    ones before, and for a page a limit may hold (`take` it once written)."""
    transport = transport_for(delivery.channel)
    return None if transport.ordered or throttle.may_hold(delivery) else _taken(delivery, transport)


def _taken(delivery: Delivery, transport, bundle: list[Delivery] = ()) -> Claimed:
    """Mark the delivery taken for one attempt (the caller writes it) and build its message;
    with `bundle`, the pages held for the same contact point go in it too."""
    alarm = delivery.alarm
    delivery.status = Status.SENDING
    delivery.attempts += 1
    delivery.next_attempt_at = timezone.now() + sending_lease()
    delivery.queued_until = None  # its task has run: only the lease holds it now
    delivery.claimed_by = liveness.process_name()  # ...or this process's death
    ack_url = ""
    if delivery.event == NOTIFY and transport.ack_link:
        ack_url = issue_ack_link(alarm, person=delivery.person, channel=posted_to(delivery))
    message = build_message(
        alarm, transport, event=delivery.event, step=delivery.step, round_=delivery.round,
        cycle=delivery.cycle, ack_url=ack_url, channel=delivery.channel,
        reply_code=_reply_code(delivery),
    )  # fmt: skip
    if bundle:
        message = bundles.carrying(message, delivery, bundle)
    delivery.message = transport.redact(message.stored_text())
    ref = alarm.external_refs.get(ref_key(delivery), {}) if delivery.channel_id else {}
    out = Outgoing(alarm, delivery.event, message, delivery.address, delivery.person, ref,
                   key=delivery.idempotency_key(), delivery_id=delivery.pk)  # fmt: skip
    return Claimed(delivery, transport, out, tuple(bundle))


def _reply_code(delivery: Delivery) -> int | None:
    """The code a person answers this message by: taken for a step's SMS or Signal message,
    the one it had for a stand-down; None for anything else."""
    if delivery.method not in REPLY_METHODS or not delivery.person_id:
        return None
    if delivery.event == NOTIFY:
        return reply_codes.code_for(delivery.alarm, delivery.person, delivery.address)
    if delivery.event == STAND_DOWN:
        return reply_codes.last_code(delivery.alarm, delivery.address)
    return None


def send(claimed: Claimed | None) -> str | None:
    """Call the transport for a delivery taken (and committed) and record what came of it;
    return the delivery's new status, or None when there was nothing to send."""
    if claimed is None:
        return None
    with logs.about_alarm(claimed.delivery.alarm_id):
        sent = call(claimed)
    if sent:
        record_sent([(claimed, sent)])
    return claimed.delivery.status


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
                if sent := call(claimed):
                    done.append((claimed, sent))
            if len(done) == RECORD_TOGETHER:
                record_sent(done)
                done = []
    finally:
        record_sent(done)


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
    publish(ids)


def call_transport(transport, out: Outgoing, kind: str) -> Sent:
    """The transport's `send`, with every way it can fail told as a TransportError: a
    configuration it refuses (permanent), the provider's refusal, or a bug in the transport
    of this `kind` (logged; it must cost no delivery)."""
    try:
        transport.config = transport.clean_config(transport.config)
        return transport.send(out)
    except ValidationError as exc:
        message = f"invalid configuration: {' '.join(exc.messages)}"
        raise TransportError(message, permanent=True) from exc
    except TransportError as exc:
        exc.message = out.message.scrub(exc.message)
        raise
    except Exception as exc:  # noqa: BLE001 (a transport bug must not lose the delivery)
        trace = "".join(traceback.format_exception(exc))
        log.error("transport %s crashed: %s", kind, transport.redact(trace))
        raise TransportError(f"internal error: {exc.__class__.__name__}") from exc


def call(claimed: Claimed) -> Sent | None:
    """Call the transport: what it sent, to be recorded (`record_sent`); None when it failed,
    which is recorded here."""
    delivery, transport, out = claimed.delivery, claimed.transport, claimed.out
    # A step's first message is taken before its row is written: it has its id by now (a
    # call's callbacks name it).
    out.delivery_id = delivery.pk
    started = time.monotonic()
    try:
        sent = call_transport(transport, out, delivery.method)
    except TransportError as error:
        record_failure(delivery, transport, error, started)
        return None
    delivery.latency_ms, delivery.sent_at = _elapsed_ms(started), timezone.now()
    delivery.response = stored(transport, out.message.scrub(sent.response))
    sent_marks.remember(delivery, sent)
    return sent


def give_up(delivery: Delivery, why: str) -> None:
    """Not to be sent any more (the alarm closed first, nothing to follow up)."""
    delivery.status, delivery.error, delivery.next_attempt_at = Status.CANCELLED, why, None
    delivery.save(update_fields=["status", "error", "next_attempt_at", "updated_at"])
    board.publish(delivery.alarm)
    wake_next(delivery)
    instruments.delivery_attempted(delivery, instruments.CANCELLED)


def stored(transport, text: str) -> str:
    """Provider text as kept on the row: redacted whole, then cut."""
    return transport.redact(text)[:500]


def record_sent(done: list[tuple[Claimed, Sent]]) -> None:
    """Record messages sent (each with what its transport answered) in one transaction: the
    rows with one statement, the timeline entries with another, the figures in one pipeline."""
    if not done:
        return
    # By alarm: batches touch the rows of their alarms in one order.
    done = sorted(done, key=lambda item: str(item[0].delivery.alarm_id))
    with instruments.together(), transaction.atomic(), written_together():
        keeping = _lock_for_refs(done)
        for claimed, sent in done:
            delivery, transport = claimed.delivery, claimed.transport
            if sent.ref:
                _keep_ref(keeping[delivery.alarm_id], delivery, sent.ref)
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
            wake_next(delivery)
            instruments.delivery_attempted(delivery, instruments.SENT, delivery.latency_ms / 1000)
        sent = [claimed.delivery for claimed, _ in done]
        update_many(sent, SENT_FIELDS)
        bundles.went([(claimed.delivery, claimed.bundle) for claimed, _ in done])
        attempts.record([attempts.of(row, Outcome.SENT, row.response, row.sent_at) for row in sent],
                        sent)  # fmt: skip
        wake_waiting(sent)
    sent_marks.forget([claimed.delivery for claimed, _ in done])
    for claimed, _ in done:
        with logs.about_alarm(claimed.delivery.alarm_id):
            log.info(
                "sent to %s in %d ms", claimed.delivery.describe(), claimed.delivery.latency_ms
            )


def _lock_for_refs(done: list[tuple[Claimed, Sent]]) -> dict:
    """The alarms whose messages brought a ref, locked first, before the transaction holds
    any other lock, in one order: waiting for an ACK that holds one, it holds nothing the ACK
    waits for, and batches locking alarms cannot deadlock each other."""
    ids = {claimed.delivery.alarm_id for claimed, sent in done if sent.ref}
    if not ids:
        return {}
    alarms = Alarm.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk")
    return {alarm.pk: alarm for alarm in alarms}


def _keep_ref(alarm: Alarm, delivery: Delivery, ref: dict) -> None:
    """What the provider gave to address this alarm's later updates, kept on the alarm (its
    row lock serialises writers of external_refs)."""
    key = ref_key(delivery)
    alarm.external_refs[key] = {**alarm.external_refs.get(key, {}), **ref}
    alarm.save(update_fields=["external_refs"])


def record_failure(delivery: Delivery, transport, exc: TransportError, started: float) -> None:
    """An attempt failed: tried again after a backoff, or failed for good (a permanent error,
    or the last attempt of a channel that is not an outbox)."""
    with transaction.atomic():
        delivery.latency_ms = _elapsed_ms(started)
        delivery.provider_status = exc.status[:50]
        delivery.error = stored(transport, exc.message)
        outbox = transport.outbox and not delivery.person_id
        final = exc.permanent or (
            not outbox and delivery.attempts >= settings.DELIVERY_MAX_ATTEMPTS
        )
        if final:
            delivery.status = Status.FAILED
            delivery.next_attempt_at = None
            why = "a permanent error" if exc.permanent else f"{delivery.attempts} attempts"
            then, unreachable = personal.fail_over(delivery)
            record(
                delivery.alarm,
                AlarmEvent.Kind.DELIVERY_FAILED,
                f"Failed to reach {delivery.describe()} ({delivery.what()}) after {why}: "
                f"{delivery.error}{then}",
                delivery_id=delivery.pk,
            )
            if unreachable:
                text = f"{delivery.person.name} cannot be reached: every contact point failed"
                record(delivery.alarm, AlarmEvent.Kind.UNREACHABLE, text, step=delivery.step)
            board.publish(delivery.alarm)
            wake_next(delivery)
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
        bundles.did_not_go(delivery)
        tried = attempts.of(delivery, Outcome.FAILED if final else Outcome.RETRIED, delivery.error)
        attempts.record([tried], [delivery])
    outcome = instruments.FAILED if final else instruments.RETRIED
    instruments.delivery_attempted(delivery, outcome, delivery.latency_ms / 1000)
    log.warning("%s to %s: %s", outcome, delivery.describe(), delivery.error)


def backoff_seconds(attempts: int, retry_after: float | None, longest: float = 3600.0) -> float:
    """Exponential backoff with jitter, so many failed deliveries do not return in one burst,
    up to `longest`; a provider's Retry-After is honoured, but never parks a delivery for more
    than an hour."""
    ceiling = settings.DELIVERY_RETRY_BASE_SECONDS * 2 ** min(attempts - 1, 30)
    delay = min(ceiling / 2 + random.uniform(0, ceiling / 2), longest)
    if retry_after is not None:
        delay = max(delay, retry_after + random.uniform(0, 1))
    return min(delay, 3600.0)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
