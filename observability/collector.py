"""What /metrics tells about the broker itself, read at scrape time: the figures every process
recorded in Redis (`observability.instruments`), open alarms from the database, the Celery queues'
lengths and whether each part of the alarm path is there (as /readyz says)."""

import json
import logging
import time
from datetime import datetime

from celery import current_app as celery_app  # the project's, set up by alarmsite
from django.db.models import Count
from prometheus_client import REGISTRY
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from alarms.models import OPEN_STATUSES, Alarm
from core.redis_client import client
from observability import health, instruments

log = logging.getLogger(__name__)


class BrokerCollector(Collector):
    def describe(self):
        """Names only: registering must not reach Redis or the database."""
        return [*self._recorded({}), _open_alarms({}), _queue_lengths({}), _ready({}),
                *_outbox([])]  # fmt: skip

    def collect(self):
        recorded, queues, heard, redis_ok = _read_redis()
        open_alarms, database_ok = _count_open_alarms()
        yield from self._recorded(recorded)
        yield _open_alarms(open_alarms)
        yield _queue_lengths(queues)
        yield _ready({"database": database_ok, "redis": redis_ok, **heard})
        yield from _outbox(health.outbox_backlog() or [])

    def _recorded(self, hashes: dict):
        for spec in instruments.RECORDED:
            values = [hashes.get(key, {}) for key in spec.keys]
            if isinstance(spec, instruments.Counter):
                yield _counter(spec, *values)
            else:
                yield _histogram(spec, *values)


def _queue_names() -> list[str]:
    return sorted(celery_app.amqp.queues.keys())


def _read_redis():
    """Every recorded hash, the queues' lengths and when worker and beat last reported, in
    one round trip. Without Redis: nothing, and redis not ready."""
    keys = [key for spec in instruments.RECORDED for key in spec.keys]
    queues, parts = _queue_names(), ("worker", "beat")
    try:
        with client().pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            # Tasks carry no priority, so every waiting message is in the queue's own list.
            for queue in queues:
                pipe.llen(queue)
            for part in parts:
                pipe.get(health.last_seen_key(part))
            answers = pipe.execute()
    except Exception as exc:  # noqa: BLE001 (the rest of the page still answers)
        log.warning("/metrics without Redis: %s", exc.__class__.__name__)
        return {}, {}, {part: False for part in parts}, False
    hashes = {key: _decoded(answer) for key, answer in zip(keys, answers, strict=False)}
    lengths = dict(zip(queues, answers[len(keys) : len(keys) + len(queues)], strict=True))
    seen = answers[len(keys) + len(queues) :]
    heard = {part: health.heard_recently(at) for part, at in zip(parts, seen, strict=True)}
    return hashes, lengths, heard, True


def _decoded(answer: dict) -> dict:
    return {tuple(json.loads(k)): float(v) for k, v in answer.items()}


def _count_open_alarms():
    """{status: count} of open alarms, in one aggregate query."""
    try:
        rows = (
            Alarm.objects.filter(status__in=OPEN_STATUSES)
            .order_by()
            .values_list("status")
            .annotate(n=Count("pk"))
        )
        counts = dict(rows)
    except Exception as exc:  # noqa: BLE001 (the rest of the page still answers)
        log.warning("/metrics without the database: %s", exc.__class__.__name__)
        return {}, False
    return {status: counts.get(status, 0) for status in OPEN_STATUSES}, True


def _counter(spec, values: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(spec.name, spec.doc, labels=spec.labels)
    for labels, value in sorted(values.items()):
        family.add_metric(labels, value)
    return family


def _histogram(spec, buckets: dict, sums: dict) -> HistogramMetricFamily:
    """Buckets are stored one per value (the bucket it fell in) and cumulated here."""
    family = HistogramMetricFamily(spec.name, spec.doc, labels=spec.labels)
    bounds = [*spec.buckets, float("inf")]
    for labels, total in sorted(sums.items()):
        counts, running = [], 0.0
        for bound in bounds:
            running += buckets.get((*labels, str(float(bound))), 0.0)
            counts.append((floatToGoString(bound), running))
        family.add_metric(list(labels), counts, total)
    return family


def _gauge(name: str, doc: str, label: str, values: dict) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], float(value))
    return family


def _open_alarms(counts: dict) -> GaugeMetricFamily:
    return _gauge("alarmbroker_alarms_open", "Open alarms by status.", "status", counts)


def _queue_lengths(lengths: dict) -> GaugeMetricFamily:
    doc = (
        "Tasks waiting in each Celery queue for a worker (countdown tasks a worker holds "
        "are not counted)."
    )
    return _gauge("alarmbroker_celery_queue_length", doc, "queue", lengths)


def _ready(checks: dict) -> GaugeMetricFamily:
    doc = (
        "1 when this part of the alarm path is there (as /readyz says): the database and "
        "Redis answer, a worker and beat reported within the last minute."
    )
    return _gauge("alarmbroker_ready", doc, "check", checks)


def _outbox(channels: list[dict]):
    """Messages waiting for each outbox channel, and how long its provider has refused them
    (0: it has not), as the last look found them."""
    labels = ["channel", "kind"]
    waiting = GaugeMetricFamily(
        "alarmbroker_outbox_waiting",
        "Messages not yet taken by a channel that keeps a remote record in step (upstream "
        "broker, Zammad, PagerDuty).", labels=labels,
    )  # fmt: skip
    failing = GaugeMetricFamily(
        "alarmbroker_outbox_failing_seconds",
        "How long the oldest message its provider refused has waited (0: none refused).",
        labels=labels,
    )
    now = time.time()
    for channel in channels:
        names = [channel["channel"], channel["kind"]]
        waiting.add_metric(names, channel["waiting"])
        since = channel["failing_since"]
        failing.add_metric(names, now - datetime.fromisoformat(since).timestamp() if since else 0)
    yield waiting
    yield failing


REGISTRY.register(BrokerCollector())
