"""A storm of test alarms against this instance (`manage.py stormtest`): raised at a steady rate
through `lifecycle.raise_alarm` by a few threads, timed, counted against the storm guard, and
cancelled again. Unless asked to notify, the test alarms follow a policy of their own without
steps, so the storm guard folds them as it would real ones while nobody is paged."""

import math
import threading
import time
from dataclasses import dataclass, field

from django.db import close_old_connections, connection
from django.db.models import Count
from django.utils import timezone

from alarms import lifecycle, storms
from alarms.drills import firing
from alarms.models import OPEN_STATUSES, Alarm
from alarms.timeline import Actor
from escalation.models import EscalationPolicy
from notifications.models import Delivery

MAX_ALARMS = 10_000
CONFIRM_ABOVE = 500
MAX_RATE = 1000.0
THREADS = 4


@dataclass
class Storm:
    """One run: what it raised and how long each raise took."""

    run: str
    count: int
    source: str
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def key_prefix(self) -> str:
        return f"stormtest:{self.run}:"

    @property
    def title_prefix(self) -> str:
        return f"{firing.TITLE_PREFIX}Storm test {self.run}:"

    def alarms(self):
        return Alarm.objects.filter(dedup_key__startswith=self.key_prefix)

    def storm_alarms(self):
        """Storm alarms this run opened (their first alarm was one of ours)."""
        return Alarm.objects.filter(
            source=storms.SOURCE, message__contains=f"First: {self.title_prefix}"
        )

    def all_alarms(self):
        """The test alarms and the storm alarms they opened, in one query."""
        return self.alarms() | self.storm_alarms()


def quiet_policy_name(run: str) -> str:
    return f"Storm test {run} (notifies nobody)"


def quiet_policy(run: str) -> EscalationPolicy:
    """A policy without steps for this run: its alarms, and the storm alarm that folds them,
    notify nobody."""
    return EscalationPolicy.objects.create(name=quiet_policy_name(run))


def raise_storm(storm: Storm, rate: float, actor: Actor, policy=None) -> None:
    """Raise `storm.count` test alarms, the i-th due at start + i / rate, from THREADS threads
    (each raise is timed on its own; a slow one does not hold up the schedule of the others)."""
    numbers, lock = iter(range(storm.count)), threading.Lock()
    started = time.monotonic()

    def work(_):
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            time.sleep(max(0.0, started + number / rate - time.monotonic()))
            raise_one(storm, number, actor, policy)

    in_threads(work, range(THREADS))
    storm.seconds = time.monotonic() - started


def in_threads(work, shares) -> None:
    """Run `work(share)` for each share in a thread of its own, and wait for them all."""

    def run(share):
        try:
            work(share)
        finally:
            connection.close()  # this thread's own

    threads = [
        threading.Thread(target=run, args=(share,), name=f"stormtest-{n}")
        for n, share in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def raise_one(storm: Storm, number: int, actor: Actor, policy) -> None:
    began = time.perf_counter()
    try:
        lifecycle.raise_alarm(
            source=storm.source,
            dedup_key=f"{storm.key_prefix}{number}",
            title=f"{storm.title_prefix} alarm {number + 1} of {storm.count}",
            message="Raised by a storm test; it is cancelled when the test ends.",
            severity="critical",
            labels=firing.drill_labels(storm.run),
            policy=policy,
            actor=actor,
        )
    except Exception as exc:  # noqa: BLE001 (counted and shown: that is what is measured)
        storm.errors.append(f"{exc.__class__.__name__}: {exc}"[:200])
        close_old_connections()
        return
    storm.latencies_ms.append((time.perf_counter() - began) * 1000)


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value at least p % of the values are at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else 0.0


def folded(storm: Storm) -> int:
    return storm.alarms().exclude(folded_into=None).count()


def silenced_otherwise(storm: Storm) -> int:
    return storm.alarms().exclude(silenced_by="").filter(folded_into=None).count()


def notifications(storm: Storm) -> dict[str, int]:
    """Step messages of the test alarms and of the storm alarms they opened, by status."""
    rows = Delivery.objects.filter(alarm__in=storm.all_alarms(), event=Delivery.Event.NOTIFY)
    counts = dict.fromkeys(Delivery.Status.values, 0)
    counts.update(rows.values_list("status").annotate(Count("pk")))
    return counts


def settle(storm: Storm, seconds: float) -> dict[str, int]:
    """Wait up to `seconds` for the steps already due to run and their messages to finish;
    return the counts."""
    deadline = time.monotonic() + seconds
    while True:
        # Steps due first, messages second: a step leaves the alarm not due and writes its
        # messages in one commit, so counted after, its messages are seen; counted before, a
        # step committing in between would be missed by both reads.
        steps_due = (
            storm.alarms()
            .filter(status="triggered", next_escalation_at__lte=timezone.now())
            .exists()
        )
        counts = notifications(storm)
        busy = counts[Delivery.Status.PENDING] + counts[Delivery.Status.SENDING]
        if not (busy or steps_due) or time.monotonic() >= deadline:
            return counts
        time.sleep(0.5)


def clean_up(run: str, actor: Actor) -> int:
    """Cancel the run's open test alarms and the storm alarms it opened, and remove its quiet
    policy; return how many alarms were cancelled."""
    storm = Storm(run=run, count=0, source="")
    open_ones = storm.all_alarms().filter(status__in=OPEN_STATUSES)
    ids = list(open_ones.values_list("pk", flat=True))
    cancelled = []

    def work(share):
        for pk in share:
            cancelled.append(lifecycle.cancel(pk, actor, "storm test finished").changed)

    in_threads(work, [ids[n::THREADS] for n in range(THREADS)])
    EscalationPolicy.objects.filter(name=quiet_policy_name(run)).delete()
    return sum(cancelled)
