"""Metric threshold rules: samples sent to /v1/metrics are checked against every MetricRule for
that metric; each series (label set) is watched on its own, under its row lock.

A condition that holds raises the alarm once it has held for the rule's `for_seconds` (known
when a later sample arrives); a sample where it no longer holds resolves the alarm; a series
that resolved raises again no sooner than `cooldown_seconds` later. Samples older than the
series' last one are ignored (late or repeated deliveries).
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from alarms import lifecycle
from alarms.models import AlarmEvent, MetricRule, MetricSeries
from alarms.timeline import Actor, record
from core import label_matchers
from core.storable_text import explained

log = logging.getLogger(__name__)
REFUSED = "not stored: the alarm store refused it (logged)"
# How far ahead of this server's clock a sample's time may be (senders' clocks drift); one
# further ahead is refused, as no later sample of its series would be newer.
MAX_AHEAD = timedelta(minutes=5)


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    labels: dict
    at: datetime
    made_storable: tuple = ()  # the fields sent that had to be made storable


def series_key(labels: dict) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:32]


def record_samples(samples: list[Sample], device) -> tuple[list[dict], list[dict]]:
    """Check each sample against the rules for its metric; return what changed, and the checks
    the database refused (each in a transaction of its own: one costs none of the others)."""
    names = {sample.name for sample in samples}
    rules = {}
    for rule in MetricRule.objects.filter(enabled=True, metric__in=names).select_related("site"):
        rules.setdefault(rule.metric, []).append(rule)
    changes, failed = [], []
    for sample in samples:
        for rule in rules.get(sample.name, []):
            if not label_matchers.all_match(rule.parsed_matchers, sample.labels):
                continue
            try:
                change = _check(rule, sample, device)
            except OperationalError:
                raise  # the store is away: the sender is told to send again
            except Exception:
                log.exception("a sample of %s was not checked against %s", sample.name, rule.name)
                failed.append({"rule": rule.name, "labels": sample.labels, "error": REFUSED})
                continue
            if change:
                changes.append(change)
    return changes, failed


def _check(rule: MetricRule, sample: Sample, device) -> dict | None:
    key = series_key(sample.labels)
    with transaction.atomic():
        series = _locked_series(rule, key, sample.labels)
        _forget_times_ahead(series, timezone.now() + MAX_AHEAD)
        if series.last_at and sample.at < series.last_at:
            return None
        series.last_value, series.last_at = sample.value, sample.at
        change = None
        if not rule.holds(sample.value):
            series.holding_since = None
            if series.firing:
                change = _resolve(rule, series, sample, device)
        else:
            series.holding_since = series.holding_since or sample.at
            if not series.firing and _due(rule, series, sample.at):
                change = _raise(rule, series, sample, device)
        series.save()
        return change


def _locked_series(rule: MetricRule, key: str, labels: dict) -> MetricSeries:
    found = MetricSeries.objects.select_for_update().filter(rule=rule, key=key).first()
    if found:
        return found
    try:
        with transaction.atomic():
            return MetricSeries.objects.create(rule=rule, key=key, labels=labels)
    except IntegrityError:  # another request made it first
        return MetricSeries.objects.select_for_update().get(rule=rule, key=key)


def _forget_times_ahead(series: MetricSeries, horizon: datetime) -> None:
    """A time stored ahead of the clock (a future sample taken before they were refused) is not
    trusted: no later sample would be newer, hold long enough or cool down, and the rule would
    never fire again."""
    for name in ("last_at", "holding_since", "resolved_at"):
        at = getattr(series, name)
        if at is not None and at > horizon:
            setattr(series, name, None)


def _due(rule: MetricRule, series: MetricSeries, at: datetime) -> bool:
    if at - series.holding_since < timedelta(seconds=rule.for_seconds):
        return False
    cooled = series.resolved_at is None or at - series.resolved_at >= timedelta(
        seconds=rule.cooldown_seconds
    )
    return cooled


def dedup_key(rule: MetricRule, series: MetricSeries) -> str:
    return f"metric:{rule.pk}:{series.key}"


def _raise(rule, series, sample: Sample, device) -> dict:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
    actor = Actor(f"metric rule {rule.name}")
    outcome = lifecycle.raise_alarm(
        source="metric",
        dedup_key=dedup_key(rule, series),
        title=f"{rule.name}: {sample.name} is {sample.value:g}"[:255],
        message=f"{sample.name}{{{shown}}} = {sample.value:g}, {rule.operator} {rule.threshold:g}"
        f" since {series.holding_since:%Y-%m-%d %H:%M:%S %Z}.",
        severity=rule.severity,
        labels={**sample.labels, "metric": sample.name},
        details={"rule": rule.name, "value": sample.value, "threshold": rule.threshold},
        device=device,
        site=rule.site,
        actor=actor,
    )
    if sample.made_storable and outcome.changed:
        fields = list(sample.made_storable)
        record(outcome.alarm, AlarmEvent.Kind.UPDATED, explained(fields), actor,
               made_storable=fields)  # fmt: skip
    series.firing = True
    return {"rule": rule.name, "labels": sample.labels, "alarm_id": str(outcome.alarm.pk),
            "action": "raised"}  # fmt: skip


def _resolve(rule, series, sample: Sample, device) -> dict:
    note = f"{sample.name} is {sample.value:g}: no longer {rule.operator} {rule.threshold:g}"
    outcome = lifecycle.clear(dedup_key(rule, series), Actor(f"metric rule {rule.name}"), note)
    series.firing, series.resolved_at = False, sample.at
    alarm_id = str(outcome.alarm.pk) if outcome else None
    return {"rule": rule.name, "labels": sample.labels, "alarm_id": alarm_id, "action": "resolved"}
