"""The broker's own figures (alarms raised, notifications, latencies), recorded in Redis so that
/metrics in the web process sees what every worker did; `observability.collector` reads them.

Each event is one pipelined round trip, sent after the transaction commits. Recording fails
open: with Redis down a figure is lost, never an alarm (a warning, then silence for a while).
"""

import json
import logging
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from core.deferred_writes import Together
from core.redis_client import client as redis_client
from notifications.transports.base import NOTIFY

log = logging.getLogger(__name__)

PREFIX = "metrics:"
# After a failed write, skip recording this long: a dead Redis costs one timeout, not one
# per alarm.
QUIET_SECONDS = 10.0
# Long enough for any retry of an alarm's first message; one small key per alarm.
FIRST_SENT_TTL = 7 * 24 * 3600
# Person deliveries by email go through Django's mail settings, not a channel.
MAIL_SETTINGS = "email settings"
# What came of a delivery attempt.
SENT, RETRIED, FAILED, CANCELLED = "sent", "retried", "failed", "cancelled"


@dataclass(frozen=True)
class Counter:
    name: str  # without _total: the exposition adds it
    doc: str
    labels: tuple[str, ...]

    @property
    def key(self) -> str:
        return PREFIX + self.name

    @property
    def keys(self) -> list[str]:
        return [self.key]

    def add(self, pipe, *values: str) -> None:
        pipe.hincrby(self.key, field(values), 1)


@dataclass(frozen=True)
class Histogram:
    name: str
    doc: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]

    @property
    def key(self) -> str:
        return PREFIX + self.name

    @property
    def keys(self) -> list[str]:
        """One count per bucket a value fell in, and the sum of the values."""
        return [self.key + ":buckets", self.key + ":sum"]

    def bucket_field(self, seconds: float, values) -> str:
        """The field of the one bucket this value falls in (cumulated when read)."""
        le = next((b for b in self.buckets if seconds <= b), float("inf"))
        return field((*values, str(float(le))))

    def observe(self, pipe, seconds: float, *values: str) -> None:
        seconds = max(0.0, seconds)
        buckets, sums = self.keys
        pipe.hincrby(buckets, self.bucket_field(seconds, values), 1)
        pipe.hincrbyfloat(sums, field(values), seconds)


def field(values) -> str:
    return json.dumps([str(v) for v in values])


ALARMS_RAISED = Counter(
    "alarmbroker_alarms_raised", "Alarms opened, by source and severity.", ("source", "severity")
)
NOTIFICATIONS = Counter(
    "alarmbroker_notifications",
    "Delivery attempts by channel kind and name and what came of them: sent, retried "
    "(transient failure, tried again later), failed (given up), cancelled (not sent: the "
    "alarm closed first, or no step posted to the channel).",
    ("kind", "channel", "outcome"),
)
DELIVERY_SECONDS = Histogram(
    "alarmbroker_delivery_duration_seconds",
    "How long each call to a mail server or provider took, by channel kind.",
    ("kind",),
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
FIRST_NOTIFICATION_SECONDS = Histogram(
    "alarmbroker_first_notification_seconds",
    "From an alarm's creation to its first message sent (first step's delay included).",
    ("severity",),
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
ACKNOWLEDGE_SECONDS = Histogram(
    "alarmbroker_acknowledge_seconds",
    "From an alarm's creation to its acknowledgement.",
    ("severity",),
    (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)
ESCALATION_LATENESS_SECONDS = Histogram(
    "alarmbroker_escalation_lateness_seconds",
    "How late an escalation step ran after it was due, by what ran it: its countdown task, "
    "or the sweep (the task was lost or the delay too long for one).",
    ("via",),
    (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RECORDED = (
    ALARMS_RAISED,
    NOTIFICATIONS,
    DELIVERY_SECONDS,
    FIRST_NOTIFICATION_SECONDS,
    ACKNOWLEDGE_SECONDS,
    ESCALATION_LATENESS_SECONDS,
)

# The first message of an alarm is the one that sets its key; later ones count nothing.
_OBSERVE_IF_FIRST = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[3], ARGV[4])
end
return 0
"""


# --- what is recorded -----------------------------------------------------------------


def alarm_raised(alarm) -> None:
    _record(lambda pipe: ALARMS_RAISED.add(pipe, alarm.source, alarm.severity))


def _started(alarm):
    """When the alarm's current cycle started: its raise, or its last reopening."""
    return alarm.reopened_at or alarm.created_at


def alarm_acknowledged(alarm) -> None:
    seconds = (alarm.acknowledged_at - _started(alarm)).total_seconds()
    _record(lambda pipe: ACKNOWLEDGE_SECONDS.observe(pipe, seconds, alarm.severity))


def escalation_step_ran(due_at, via: str) -> None:
    """A step ran `via` its countdown task, the drain of the queue, or the sweeper."""
    seconds = (timezone.now() - due_at).total_seconds()
    _record(lambda pipe: ESCALATION_LATENESS_SECONDS.observe(pipe, seconds, via))


def delivery_attempted(delivery, outcome: str, seconds: float | None = None) -> None:
    """One attempt's outcome (`SENT`, `RETRIED`, …); `seconds`: how long the transport call
    took (None: no call was made). A step's message sent may be the alarm's first."""
    first = outcome == SENT and delivery.event == NOTIFY
    channel = delivery.channel
    kind = channel.kind if channel else delivery.method
    name = channel.name if channel else MAIL_SETTINGS
    alarm, sent_at = delivery.alarm, delivery.sent_at or timezone.now()

    def write(pipe):
        NOTIFICATIONS.add(pipe, kind, name, outcome)
        if seconds is not None:
            DELIVERY_SECONDS.observe(pipe, seconds, kind)
        if first:
            _observe_first(pipe, alarm, delivery.cycle, sent_at)

    _record(write)


def _observe_first(pipe, alarm, cycle: int, sent_at) -> None:
    """The first message of each cycle of the alarm (its raise, each reopening) counts."""
    seconds = max(0.0, (sent_at - _started(alarm)).total_seconds())
    histogram = FIRST_NOTIFICATION_SECONDS
    keys = (f"{PREFIX}first-sent:{alarm.pk}:{cycle}", *histogram.keys)
    args = (
        FIRST_SENT_TTL,
        histogram.bucket_field(seconds, (alarm.severity,)),
        field((alarm.severity,)),
        seconds,
    )
    pipe.eval(_OBSERVE_IF_FIRST, len(keys), *keys, *args)


# --- writing ----------------------------------------------------------------------------

_quiet_until = 0.0


def _record(write) -> None:
    """Run `write(pipeline)` once the current transaction commits (at once outside one), or
    inside `together()` with the block's others as it ends."""
    if not _figures.add(write):
        transaction.on_commit(lambda: _send(write))


def _send_all(writes: list) -> None:
    _send(lambda pipe: [write(pipe) for write in writes])


_figures = Together(_send_all)

# Figures recorded inside go to Redis in one pipeline as the block ends, none if it raises:
# begin it outside the transaction that they wait for.
together = _figures.block


def _send(write) -> None:
    global _quiet_until
    if time.monotonic() < _quiet_until:
        return
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            write(pipe)
            pipe.execute()
    except Exception as exc:  # noqa: BLE001 (a figure must never fail an alarm)
        _quiet_until = time.monotonic() + QUIET_SECONDS
        log.warning(
            "broker metrics not recorded for %.0f s (%s: %s)",
            QUIET_SECONDS,
            exc.__class__.__name__,
            exc,
        )


def resume() -> None:
    """Record again at once (tests, after they brought Redis back)."""
    global _quiet_until
    _quiet_until = 0.0
