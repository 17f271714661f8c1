"""The dispatch board's server side: this module publishes changes to every open board;
`cards` builds what a card shows, `snapshot` what a board receives on connect, `consumer` is
its WebSocket and `websocket_urls` its route (the page's script and style are static files).

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

from accounts import roles
from core.channel_layer import group_send
from core.redis_client import client

from ..models import Alarm
from . import cards

log = logging.getLogger(__name__)

GROUP = "board"
# What the board's buttons do, and the permission each needs.
ACTION_PERMISSIONS = {
    "acknowledge": "alarms.acknowledge_alarm",
    "claim": "alarms.acknowledge_alarm",  # on the way: the first claim acknowledges
    "resolve": "alarms.resolve_alarm",
    "cancel": "alarms.cancel_alarm",
}
SEQUENCE_KEY = "board:sequence"
WATCHED_KEY = "board:watched"


def user_group(user_id: int) -> str:
    return f"board.user.{user_id}"


def can_watch(user) -> bool:
    return roles.may_read_alarms(user)


def keep_watched() -> tuple[int, str] | None:
    """A board is open: say so for a few heartbeats; return the current sequence number and
    the numbering's epoch, or None when Redis cannot be reached (then no event reaches any
    board). The epoch is the Redis server's run id: another server (restarted empty, or a
    replica promoted without the last numbers) numbers anew, and every board reads itself
    again when it changes."""
    try:
        pipe = client().pipeline(transaction=False)
        pipe.set(WATCHED_KEY, 1, ex=max(60, int(4 * settings.BOARD_HEARTBEAT_SECONDS)))
        pipe.get(SEQUENCE_KEY)
        pipe.info("server")
        _, sequence, server = pipe.execute()
    except redis.RedisError:
        return None
    return int(sequence or 0), server["run_id"]


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
    text = json.dumps({"type": "alarm", "seq": sequence, "alarm": cards.card(alarm, deliveries=())})
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
        alarm_card = cards.cards_of(Alarm.objects.filter(pk=alarm_id))[0]
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
    """What now waits for the outbox channels (`alarms.outbox_watch`), to every open board."""
    _send_text(json.dumps({"type": "outbox", "channels": channels}), "outbox")


def disconnect_user(user_id: int) -> None:
    """Close every board socket of this user (logged out or deactivated)."""
    try:
        group_send(user_group(user_id), {"type": "board.disconnect"})
    except Exception:  # noqa: BLE001
        log.warning("could not close the board sockets of user %s", user_id, exc_info=True)
