"""The dispatch board's data: alarm cards, the open-alarm snapshot, and publishing changes.

Every change reaches the board through `publish(alarm)`, called inside the transaction that
made it; the event is sent after commit, stamped with a sequence number from Redis, so a page
that misses one notices the gap and asks for a fresh snapshot.

An open board keeps a key in Redis alive (set before its snapshot is read, renewed with every
heartbeat). While no board is open, a change is numbered but its card is neither read nor
sent: the next board to open reads it in its snapshot.
"""

import json
import logging
import threading
from contextlib import contextmanager

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, IntegerField, Prefetch, Q, When

from accounts import roles
from core.channel_layer import group_send
from core.redis_client import client
from notifications.models import Delivery
from observability import health

from . import storms
from .models import OPEN_STATUSES, SEVERITY_RANK, Alarm, AlarmEvent

log = logging.getLogger(__name__)

GROUP = "board"
# What the board's buttons do, and the permission each needs.
ACTION_PERMISSIONS = {
    "acknowledge": "alarms.acknowledge_alarm",
    "resolve": "alarms.resolve_alarm",
    "cancel": "alarms.cancel_alarm",
}
SEQUENCE_KEY = "board:sequence"
WATCHED_KEY = "board:watched"
# The label that names what fired, as the source calls it: two PagerDuty alarms titled alike
# differ by their `origin` (the event's `source`).
NAME_LABELS = {"alertmanager": "alertname", "pagerduty": "origin"}
# A card carries this many labels at most, each value cut to this length: the snapshot of
# every open alarm stays small.
CARD_LABELS, CARD_LABEL_LENGTH = 12, 120
CARD_MESSAGE_LENGTH, CARD_DELIVERIES = 2000, 20
# The snapshot goes in parts, most urgent first, so the first screenful shows at once and no
# WebSocket message comes near a frame limit (1 MiB at many proxies and servers): the first
# part holds this many cards, each later one this many, and none more than this many bytes.
SNAPSHOT_FIRST, SNAPSHOT_PART, SNAPSHOT_PART_BYTES = 60, 500, 256 * 1024


def user_group(user_id: int) -> str:
    return f"board.user.{user_id}"


def can_watch(user) -> bool:
    return roles.may_read_alarms(user)


def _iso(value):
    return value.isoformat() if value else None


def card(alarm: Alarm, deliveries=None, reopened_after=None) -> dict:
    """Everything a board card shows; plain data, rendered as text by the page.
    `reopened_after`: seconds from its last resolve to its last reopening, when known."""
    deliveries = list(alarm.deliveries.all() if deliveries is None else deliveries)
    return {
        "id": str(alarm.pk),
        "title": alarm.title,
        "message": alarm.message[:CARD_MESSAGE_LENGTH],
        "severity": alarm.severity,
        "severity_rank": SEVERITY_RANK.get(alarm.severity, 9),
        "status": alarm.status,
        "source": alarm.source,
        "site": alarm.site.name if alarm.site else "",
        "site_id": alarm.site_id,
        "room": alarm.room.name if alarm.room else "",
        "person": alarm.person.name if alarm.person else "",
        "device": alarm.device.name if alarm.device else "",
        # A person's press stands in a band of its own above every other alarm.
        "person_press": storms.stands_for_person(alarm.device),
        "storm": alarm.source == storms.SOURCE,
        "folded_into": str(alarm.folded_into_id) if alarm.folded_into_id else None,
        "source_name": source_name(alarm),
        "labels": [
            [name, str(value)[:CARD_LABEL_LENGTH]]
            for name, value in list((alarm.labels or {}).items())[:CARD_LABELS]
        ],
        "occurrences": alarm.occurrences,
        "created_at": _iso(alarm.created_at),
        "last_occurrence_at": _iso(alarm.last_occurrence_at or alarm.created_at),
        "reopen_count": alarm.reopen_count,
        "reopened_at": _iso(alarm.reopened_at),
        "reopened_after_seconds": reopened_after,
        "acknowledged_by": alarm.acknowledged_by,
        "acknowledged_at": _iso(alarm.acknowledged_at),
        "resolved_by": alarm.resolved_by,
        "resolved_at": _iso(alarm.resolved_at),
        "step": alarm.current_step + 1,
        "steps": len(alarm.steps_snapshot),
        "round": alarm.current_round + 1,
        "policy": alarm.policy.name if alarm.policy else "",
        "silenced_by": alarm.silenced_by,
        "next_escalation_at": _iso(alarm.next_escalation_at),
        "deliveries": [
            {
                "target": str(d.person or d.channel or d.target),
                "method": d.method,
                "event": d.event,
                "status": d.status,
                "step": d.step + 1,
                "round": d.round + 1,
                "error": d.error[:200],
            }
            for d in deliveries[-CARD_DELIVERIES:]
        ],
        "deliveries_before": max(0, len(deliveries) - CARD_DELIVERIES),
    }


def source_name(alarm: Alarm) -> str:
    """What fired, in the source's own words (Alertmanager's alertname, PagerDuty's source)."""
    labels = alarm.labels or {}
    name = labels.get(NAME_LABELS.get(alarm.source, ""), "")
    return str(name)[:CARD_LABEL_LENGTH]


def _cards(alarms) -> list[dict]:
    deliveries = Delivery.objects.select_related("person", "channel")
    alarms = alarms.select_related("site", "room", "person", "device", "policy")
    alarms = list(alarms.prefetch_related(Prefetch("deliveries", deliveries)))
    after = _reopened_after(alarms)
    return [card(a, reopened_after=after.get(a.pk)) for a in alarms]


def _reopened_after(alarms) -> dict:
    """For each reopened alarm, the seconds between the resolve before its last reopening and
    that reopening (a reopening clears `resolved_at`; its timeline keeps the resolve)."""
    reopened = {a.pk: a.reopened_at for a in alarms if a.reopened_at}
    if not reopened:
        return {}
    resolves = AlarmEvent.objects.filter(alarm_id__in=reopened, kind=AlarmEvent.Kind.RESOLVED)
    last_resolve = {}
    for alarm_id, at in resolves.order_by("at").values_list("alarm_id", "at"):
        if at <= reopened[alarm_id]:
            last_resolve[alarm_id] = at  # in time order: the last one kept is the latest
    return {
        alarm_id: max(0, round((reopened[alarm_id] - at).total_seconds()))
        for alarm_id, at in last_resolve.items()
    }


class Snapshot:
    """Every open alarm, as a board receives it on connect: in parts, most urgent first (a
    person's press, the last pressed first; then by severity, the last to fire first). The
    first message is `snapshot` (the sequence number, how many alarms, the outbox backlog),
    the others `snapshot_part`; the last says `done`. Only a snapshot done says what is open."""

    def __init__(self):
        # Read the sequence before the database: any event numbered up to it was committed
        # before these queries ran, so the snapshot already holds it. Any later one is sent.
        self.seq = keep_watched() or 0
        self.ids = list(_by_urgency(Alarm.objects.filter(status__in=OPEN_STATUSES)))
        self.outbox = health.outbox_backlog() or []

    def parts(self) -> list[list]:
        """The alarm ids of each part, to be read one part at a time."""
        ids, first, size = self.ids, SNAPSHOT_FIRST, SNAPSHOT_PART
        return [ids[:first]] + [ids[i : i + size] for i in range(first, len(ids), size)]

    def messages(self, number: int, ids: list) -> list[str]:
        """The messages of part `number` (from 0): its cards as read now, split by size."""
        order = {str(pk): index for index, pk in enumerate(ids)}
        alarms = sorted(_cards(Alarm.objects.filter(pk__in=ids)), key=lambda c: order[c["id"]])
        pieces, size = [[]], 0
        for text in map(json.dumps, alarms):
            if pieces[-1] and size + len(text) > SNAPSHOT_PART_BYTES:
                pieces.append([])
                size = 0
            pieces[-1].append(text)
            size += len(text) + 1
        last = number == len(self.parts()) - 1
        texts = []
        for index, piece in enumerate(pieces):
            head = {"type": "snapshot_part", "seq": self.seq,
                    "done": last and index == len(pieces) - 1}  # fmt: skip
            if number == 0 and index == 0:
                head.update(type="snapshot", total=len(self.ids), outbox=self.outbox)
            texts.append(f'{json.dumps(head)[:-1]}, "alarms": [{",".join(piece)}]}}')
        return texts


def _by_urgency(alarms):
    """The ids of these alarms, most urgent first, as the board sorts them."""
    person = Q(device__kind="yealink") | Q(device__person__isnull=False)
    # A person's presses by their latest alone, whatever their severity.
    rank = [When(person, then=0)]
    rank += [When(severity=severity, then=value) for severity, value in SEVERITY_RANK.items()]
    return (
        alarms.annotate(
            band=Case(When(person, then=0), default=1, output_field=IntegerField()),
            rank=Case(*rank, default=9, output_field=IntegerField()),
        )
        .order_by("band", "rank", F("last_occurrence_at").desc(nulls_last=True), "-created_at")
        .values_list("pk", flat=True)
    )


def keep_watched() -> int | None:
    """A board is open: say so for a few heartbeats; return the current sequence number, or
    None when Redis cannot be reached (then no event reaches any board)."""
    try:
        pipe = client().pipeline(transaction=False)
        pipe.set(WATCHED_KEY, 1, ex=max(60, int(4 * settings.BOARD_HEARTBEAT_SECONDS)))
        pipe.get(SEQUENCE_KEY)
        return int(pipe.execute()[1] or 0)
    except redis.RedisError:
        return None


def publish(alarm: Alarm) -> None:
    """Send the alarm's new state to every board once the current transaction commits (or,
    inside `batched()`, once the batch ends)."""
    alarm_id = alarm.pk
    transaction.on_commit(lambda: _changed(alarm_id))


def publish_new(alarm: Alarm) -> None:
    """A new alarm, from inside the transaction that creates it: numbered now and sent after
    commit as built, without reading it back. Nothing else can change an alarm before it is
    committed, so every other event about it is numbered after this one."""
    try:
        pipe = client().pipeline(transaction=False)
        sequence, watched = pipe.incr(SEQUENCE_KEY).exists(WATCHED_KEY).execute()
    except redis.RedisError:
        publish(alarm)  # which fails as gently
        return
    if not watched:  # the next board to open reads it in its snapshot
        return
    text = json.dumps({"type": "alarm", "seq": sequence, "alarm": card(alarm, deliveries=())})
    transaction.on_commit(lambda: _send_text(text, alarm.pk))


_batch = threading.local()


@contextmanager
def batched():
    """Changes published inside reach the board once, as one card per alarm, when the block
    ends: a task that makes several changes in a row sends its final state only."""
    if getattr(_batch, "alarm_ids", None) is not None:  # already in one: that one sends
        yield
        return
    _batch.alarm_ids = {}
    try:
        yield
    finally:
        alarm_ids, _batch.alarm_ids = _batch.alarm_ids, None
        for alarm_id in alarm_ids:
            send_card(alarm_id)


def _changed(alarm_id) -> None:
    alarm_ids = getattr(_batch, "alarm_ids", None)
    if alarm_ids is None:
        send_card(alarm_id)
    else:
        alarm_ids[alarm_id] = True  # a dict keeps the order


def send_card(alarm_id) -> None:
    try:
        # Number first, read second: of all events for one alarm, the highest number then
        # always carries its latest state, whatever order the events arrive in.
        pipe = client().pipeline(transaction=False)
        sequence, watched = pipe.incr(SEQUENCE_KEY).exists(WATCHED_KEY).execute()
        if not watched:
            return
        alarm_card = _cards(Alarm.objects.filter(pk=alarm_id))[0]
    except Exception:  # noqa: BLE001 (boards resync from the database; never fail the caller)
        log.warning("could not publish alarm %s to the board", alarm_id, exc_info=True)
        return
    # Encoded once here, not once per socket in every web process.
    _send_text(json.dumps({"type": "alarm", "seq": sequence, "alarm": alarm_card}), alarm_id)


def _send_text(text: str, alarm_id) -> None:
    try:
        group_send(GROUP, {"type": "board.alarm", "text": text})
    except Exception:  # noqa: BLE001 (boards resync from the database; never fail the caller)
        log.warning("could not publish alarm %s to the board", alarm_id, exc_info=True)


def publish_outbox(channels: list[dict]) -> None:
    """What waits for the outbox channels (`alarms.outbox_watch`): kept for the next snapshot,
    /readyz and /metrics, and sent to every open board when it changed."""
    text = json.dumps(channels, sort_keys=True)
    try:
        before = client().set(health.OUTBOX_KEY, text, ex=health.OUTBOX_KEPT_SECONDS, get=True)
    except redis.RedisError:
        log.warning("could not keep the outbox backlog (Redis down)")
        return
    if before is None or before.decode() != text:
        _send_text(json.dumps({"type": "outbox", "channels": channels}), "outbox")


def disconnect_user(user_id: int) -> None:
    """Close every board socket of this user (logged out or deactivated)."""
    try:
        group_send(user_group(user_id), {"type": "board.disconnect"})
    except Exception:  # noqa: BLE001
        log.warning("could not close the board sockets of user %s", user_id, exc_info=True)
