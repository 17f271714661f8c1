"""What every fault scenario checks, from the database and from what the sinks accepted, and
the one line it prints: PASS or FAIL with what it counted.

- every alarm answered 200/201 is in the database;
- each step ran once (one `step_notified` per alarm, step and round) and every due step ran;
- each delivery ended sent (or cancelled by an ACK, where the scenario acknowledges);
- each sent delivery reached its sink once: a second receipt counts as `resent` only when
  the row records a second attempt (the sender died, or the database was gone, after the
  provider took the first: at-least-once by design), otherwise as a duplicate;
- nothing reached a sink that the database does not record as sent.
"""

import time
from collections import Counter
from dataclasses import dataclass, field

from django.db import Error as DatabaseError
from django.db import connection
from django.utils import timezone

from alarms.models import Alarm, AlarmEvent
from notifications.models import Delivery

NOTIFY = Delivery.Event.NOTIFY
BUSY = (Delivery.Status.PENDING, Delivery.Status.SENDING)


def acks_and_steps(alarm_ids) -> tuple[Counter, int, int]:
    """(ACKs per alarm, steps that ran after the alarm's ACK, alarms whose second step ran)."""
    acks = Counter(
        AlarmEvent.objects.filter(alarm_id__in=alarm_ids, kind="acknowledged").values_list(
            "alarm_id", flat=True
        )
    )
    late_steps = step_first = 0
    for alarm_id in alarm_ids:
        events = list(AlarmEvent.objects.filter(alarm_id=alarm_id).order_by("at", "id"))
        acked_at = next((e.at for e in events if e.kind == "acknowledged"), None)
        steps = [e for e in events if e.kind == "step_notified"]
        late_steps += sum(1 for e in steps if acked_at and e.at > acked_at)
        step_first += any(e.detail.get("step") == 1 for e in steps)
    return acks, late_steps, step_first


def receipts(sinks) -> Counter:
    return Counter(key for sink in sinks for key in list(sink.receipts))


def wait_for(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Poll until predicate() is true or time runs out; the scenario's counts tell the rest."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def settle(alarm_ids: list[str], sinks, timeout: float) -> bool:
    """Wait, at most `timeout` seconds, until nothing is left to do for these alarms: every
    escalation ended or stopped, no delivery pending or being sent, and the sinks hold a
    receipt for every delivery sent. False when time ran out."""
    return wait_for(lambda: _settled(alarm_ids, sinks), timeout, interval=0.2)


def _settled(alarm_ids, sinks) -> bool:
    try:
        escalating = Alarm.objects.filter(
            pk__in=alarm_ids, status="triggered", next_escalation_at__isnull=False
        ).exists()
        busy = Delivery.objects.filter(alarm_id__in=alarm_ids, status__in=BUSY).exists()
        sent = Delivery.objects.filter(alarm_id__in=alarm_ids, status="sent").count()
    except DatabaseError:
        connection.close()  # the database is down or was restarted: ask again later
        return False
    return not escalating and not busy and len(receipts(sinks)) >= sent


@dataclass
class Tally:
    counts: dict
    problems: list[str] = field(default_factory=list)

    def line(self, scenario: str, seconds: float) -> str:
        verdict = "FAIL" if self.problems else "PASS"
        counted = ", ".join(f"{name} {value}" for name, value in self.counts.items())
        return f"{verdict} {scenario}: {counted} ({seconds:.1f} s)"


def tally(
    alarm_ids: list[str], sinks, *, steps_each: int | None = None, acknowledged: bool = False,
    resends_allowed: int = 0,
) -> Tally:  # fmt: skip
    """Count and check. `steps_each`: step runs every alarm must have had (alarms that were
    acknowledged stop early); `acknowledged`: deliveries cancelled by an ACK are expected."""
    ids = [str(pk) for pk in alarm_ids]
    alarms = {str(a["pk"]): a for a in Alarm.objects.filter(pk__in=ids).values("pk", "status")}
    runs = Counter(
        (str(alarm_id), detail.get("step"), detail.get("round"))
        for alarm_id, detail in AlarmEvent.objects.filter(
            alarm_id__in=ids, kind=AlarmEvent.Kind.STEP_NOTIFIED
        ).values_list("alarm_id", "detail")
    )  # fmt: skip
    runs_per_alarm = Counter(alarm_id for alarm_id, _, _ in runs)
    rows = list(
        Delivery.objects.filter(alarm_id__in=ids).values(
            "alarm_id", "event", "step", "round", "address", "status", "attempts"
        )
    )
    overdue = Alarm.objects.filter(
        pk__in=ids, status="triggered", next_escalation_at__lte=timezone.now()
    ).count()
    got = receipts(sinks)
    rows_by_key = {
        (str(r["alarm_id"]), r["event"], r["step"], r["round"], r["address"]): r for r in rows
    }
    lost = duplicates = resent = 0
    for key, row in rows_by_key.items():
        if row["status"] != "sent":
            continue
        copies = got.get(key, 0)
        lost += copies == 0
        resent += max(0, min(copies, row["attempts"]) - 1)
        duplicates += max(0, copies - row["attempts"])
    phantom = sum(
        copies
        for key, copies in got.items()
        if key not in rows_by_key or rows_by_key[key]["status"] != "sent"
    )
    status = Counter(row["status"] for row in rows)
    counts = {
        "accepted": len(ids),
        "stored": len(alarms),
        "steps": sum(runs.values()),
        "deliveries": len(rows),
        "notified": sum(1 for key in got if key[1] == NOTIFY),
        "follow-ups": sum(1 for key in got if key[1] != NOTIFY),
        "duplicates": duplicates,
        "resent": resent,
        "lost": lost,
        "unsent": status["pending"] + status["sending"] + status["failed"],
        "overdue": overdue,
    }
    if acknowledged:
        counts["cancelled"] = status["cancelled"]
    problems = []
    if len(alarms) < len(ids):
        problems.append(f"{len(ids) - len(alarms)} accepted alarms are not in the database")
    if sum(runs.values()) > len(runs):
        problems.append(f"{sum(runs.values()) - len(runs)} steps ran more than once")
    if steps_each is not None:
        short = [
            pk
            for pk, alarm in alarms.items()
            if alarm["status"] == "triggered" and runs_per_alarm[pk] != steps_each
        ]
        if short:
            problems.append(f"{len(short)} alarms did not run exactly {steps_each} steps")
    if overdue:
        problems.append(f"{overdue} alarms have a step overdue")
    if counts["unsent"]:
        problems.append(f"{counts['unsent']} deliveries not sent ({dict(status)})")
    if status["cancelled"] and not acknowledged:
        problems.append(f"{status['cancelled']} deliveries cancelled")
    if lost:
        problems.append(f"{lost} deliveries recorded as sent never reached their sink")
    if duplicates:
        problems.append(f"{duplicates} messages reached a sink more often than attempted")
    if resent > resends_allowed:
        problems.append(f"{resent} messages resent (at most {resends_allowed} allowed)")
    if phantom:
        problems.append(f"{phantom} messages reached a sink without a sent delivery")
    return Tally(counts, problems)


# What a dead worker was sending must go again within this long of its death (with another
# worker there to send it): its keys expire, stay gone 3 s, and a sweep sees it.
SENT_AGAIN_WITHIN = 12.0


def sending(pids: set[str], alarm_ids=None) -> list[int]:
    """The deliveries these processes were sending (of these alarms, else of any)."""
    rows = Delivery.objects.filter(status="sending")
    if alarm_ids is not None:
        rows = rows.filter(alarm_id__in=alarm_ids)
    claimants = rows.values_list("pk", "claimed_by")
    return [pk for pk, by in claimants if by.count(":") == 2 and by.split(":")[1] in pids]


def check_sent_again(result, in_flight: list[int], since: float) -> None:
    """The messages being sent at the kill went again soon after it (or after `since`)."""
    result.counts["in flight at the kill"] = len(in_flight)
    sent = Delivery.objects.filter(pk__in=in_flight, status="sent").values_list(
        "sent_at", flat=True
    )
    if not in_flight or len(sent) < len(in_flight):
        return  # unsent ones are the tally's problem
    after = max(at.timestamp() for at in sent) - since
    result.counts["sent again after"] = f"{after:.1f} s"
    if after > SENT_AGAIN_WITHIN:
        result.problems.append(f"in-flight messages went {after:.1f} s after the kill")
