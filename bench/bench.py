"""`make bench`: the broker's figures on the production shape of this machine, beside Prometheus
Alertmanager's under the same load.

    .venv/bin/python bench/bench.py                  # every phase, full sizes
    .venv/bin/python bench/bench.py --quick          # every phase, small sizes
    .venv/bin/python bench/bench.py --only latency,storm

It starts its own stack on this machine's PostgreSQL and Redis: a database of its own
(BENCH_DATABASE_URL, default alarmbroker_bench2, dropped and created afresh) and a Redis
database of its own (BENCH_REDIS_URL, default db 7, emptied); the web process (`python -m
alarmsite.serve`), a Celery worker (prefork, one process per core) and beat, as
docker-compose.yml runs them. A threaded HTTP server in this process stands in for the
provider: every alarm's policy posts to it through a signed-JSON webhook channel. The storm
guard is off (STORM_*_THRESHOLD=0), so every alarm notifies on its own. The load comes from
other processes (bench/load.py; bench/board.py for the board) over loopback, each loop bounded
in count and time. Phases (--only):

- throughput: Yealink GETs (one phone each) and JSON raises, at concurrency 1 and 64, for a
  bounded time; accepted a second, errors by kind, and every accepted alarm found stored;
- latency: JSON raises at 50 and 200 a second, each timed from its request to its first post
  arriving at the sink;
- escalation: alarms whose policy notifies at once and again 10 s later, each second post
  timed against the time the alarm stored for it (`next_escalation_at`);
- storm: 10,000 alarms as fast as they are accepted, until every first notification is at the
  sink; lost (accepted, never notified) and duplicated (one event posted twice) notifications;
- dc09: alarm panels (8 TCP connections, AES-128) sending SIA DCS events to the DC-09
  receiver as fast as it ACKs them, each ACK only once the alarm is stored (bench/dc09.py);
- board: the delay from raising an alarm to each of 500 board WebSocket clients seeing it;
- nodes: JSON raises at concurrency 64 through HAProxy to one node, then to two (a second
  web, worker and beat beside the first), when HAProxy is installed (bench/nodes.py).

Then, with our stack stopped, the same throughput, latency and storm loads go to
prometheus-alertmanager when it is installed (a webhook receiver posting to the same sink, one
group per alert, group_wait 0s), and the table shows both with the ratio. One table on stdout,
each target with MET or MISSED, and bench/results/bench-<timestamp>.json; the processes' logs
stay in the directory named at the end. Every process it started is stopped, also on Ctrl-C.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime

import redis
import yaml
from stack import (
    ROOT,
    STORM_GUARD_OFF,
    CpuMeter,
    PostgresWatcher,
    Sink,
    Stack,
    child_env,
    configure,
    create_database,
    free_port,
    idle_busy,
    loadavg,
    migrate,
    percentiles,
    postgres_setting,
    run_stack,
    start_broker,
    wait_answering,
    wait_idle,
    write_result,
)

DATABASE_URL, REDIS_URL, RUN_DIR = configure(
    "bench", "postgres://postgres@127.0.0.1:5432/alarmbroker_bench2", "redis://127.0.0.1:6379/7"
)
LOAD = ROOT / "bench" / "load.py"
BOARD = ROOT / "bench" / "board.py"
PHASES = ("throughput", "latency", "escalation", "storm", "dc09", "board", "nodes")
# Phases whose load also goes to Alertmanager (it has no escalation steps and no board).
COMPARED = ("throughput", "latency", "storm")
ALERTMANAGER_NAMES = ("prometheus-alertmanager", "alertmanager")
ESCALATION_STEP_SECONDS = 10
RAISE_DEVICES = 64  # the JSON raises' devices, taken in turn
TARGETS = {
    "throughput_per_second": 1000,
    "first_notification_p99_ms": 250,
    "first_notification_rate": 200,
    "escalation_lateness_p99_ms": 1000,
    "storm_seconds": 60,
    "dc09_per_second": 200,
}

import dc09  # noqa: E402
import nodes  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402
from django.utils import timezone  # noqa: E402

from alarms.models import OPEN_STATUSES, Alarm, Status  # noqa: E402
from alarmsite.celery import app as celery_app  # noqa: E402
from core.tokens import hash_token, new_token  # noqa: E402
from devices.models import Device, Room, Site  # noqa: E402
from escalation.models import EscalationPolicy, EscalationStep  # noqa: E402
from notifications.models import NotificationChannel  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """How much each phase sends, and for how long at most."""

    throughput_counts: tuple[int, int]  # most requests at concurrency 1 and at 64
    throughput_seconds: float
    latency_rates: tuple[float, float]
    latency_seconds: float
    escalation_alarms: int
    escalation_rate: float
    storm_alarms: int
    storm_seconds: float  # to send them all, and again to deliver them all
    storm_processes: int
    board_clients: int
    board_alarms: int
    board_rate: float
    dc09_connections: int
    dc09_seconds: float
    drain_seconds: float  # waiting for the last notifications of a phase


FULL = Sizes(
    throughput_counts=(300, 10_000), throughput_seconds=15, latency_rates=(50, 200),
    latency_seconds=20, escalation_alarms=1000, escalation_rate=100, storm_alarms=10_000,
    storm_seconds=300, storm_processes=2, board_clients=500, board_alarms=100, board_rate=5,
    dc09_connections=8, dc09_seconds=15, drain_seconds=120,
)  # fmt: skip
QUICK = replace(
    FULL, throughput_counts=(100, 2000), throughput_seconds=5, latency_seconds=5,
    escalation_alarms=200, escalation_rate=50, storm_alarms=1000, storm_seconds=120,
    board_clients=100, board_alarms=20, dc09_seconds=5, drain_seconds=60,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Fixtures


@dataclass
class Fixtures:
    raise_tokens: list[str]  # generic devices; their policy notifies the sink at once
    phone_tokens: list[str]  # Yealink phones, the same policy; each pressed once
    escalation_tokens: list[str]  # their policy notifies at once and again 10 s later


def prepare(sink_url: str, phones: int) -> Fixtures:
    site = Site.objects.create(name="Benchmark site")
    room = Room.objects.create(site=site, name="Benchmark room")
    channel = NotificationChannel.objects.create(
        name="Benchmark sink", kind="webhook", config={"url": sink_url}, enabled=True
    )
    at_once = policy("Benchmark: at once", [0], channel)
    two_steps = policy("Benchmark: two steps", [0, ESCALATION_STEP_SECONDS], channel)
    return Fixtures(
        raise_tokens=devices("bench-raise", RAISE_DEVICES, Device.Kind.GENERIC, room, at_once),
        phone_tokens=devices("bench-phone", phones, Device.Kind.YEALINK, room, at_once),
        escalation_tokens=devices("bench-escalation", 16, Device.Kind.GENERIC, room, two_steps),
    )


def policy(name: str, delays: list[int], channel) -> EscalationPolicy:
    made = EscalationPolicy.objects.create(name=name, repeat_count=0)
    for order, delay in enumerate(delays):
        step = EscalationStep.objects.create(
            policy=made, order=order, delay_seconds=delay, methods=[]
        )
        step.channels.set([channel])
    return made


def devices(prefix: str, count: int, kind: str, room, default_policy) -> list[str]:
    """`count` devices in one statement; their tokens (stored only hashed, as always)."""
    tokens = [new_token() for _ in range(count)]
    Device.objects.bulk_create(
        Device(
            name=f"{prefix}-{i}", kind=kind, room=room, site=room.site, token_hash=hash_token(t),
            default_policy=default_policy,
            rate_limit_per_minute=1_000_000,  # far above any rate here: not the limiter's figure
        )
        for i, t in enumerate(tokens)
    )  # fmt: skip
    return tokens


def stored(alarm_ids: list[str]) -> dict:
    """How many of these alarms are rows in the database, and their occurrences together."""
    rows = occurrences = 0
    for start in range(0, len(alarm_ids), 5000):
        found = Alarm.objects.filter(pk__in=alarm_ids[start : start + 5000]).aggregate(
            rows=Count("pk"), occurrences=Sum("occurrences")
        )
        rows += found["rows"]
        occurrences += found["occurrences"] or 0
    return {"rows": rows, "occurrences": occurrences}


def close_open_alarms() -> int:
    """Resolve every open alarm in one statement (the bench's own database), so a board's
    snapshot holds only what its phase raises."""
    return Alarm.objects.filter(status__in=OPEN_STATUSES).update(
        status=Status.RESOLVED, resolved_at=timezone.now(), resolved_by="benchmark",
        next_escalation_at=None, escalation_token=None,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Load from other processes


@dataclass
class Load:
    """What the drivers' requests got: [index, sent, answered, status, id, error(, lag)]."""

    records: list
    cpu_seconds: float
    aborted: str = ""

    @property
    def accepted(self) -> list:
        return [r for r in self.records if r[4]]

    @property
    def ids(self) -> list[str]:
        return [r[4] for r in self.records if r[4]]

    def errors(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for record in self.records:
            if record[5]:
                found[record[5]] = found.get(record[5], 0) + 1
        return found

    def span(self) -> float:
        """From the first request sent to the last accepted one answered."""
        accepted = self.accepted
        if not accepted:
            return 0.0
        return max(r[2] for r in accepted) - min(r[1] for r in self.records)

    def per_second(self) -> float | None:
        span = self.span()
        return round(len(self.accepted) / span, 1) if span else None

    def answer_ms(self) -> dict:
        return percentiles([(r[2] - r[1]) * 1000 for r in self.accepted])

    def summary(self) -> dict:
        return {"sent": len(self.records), "accepted": len(self.accepted),
                "errors": self.errors(), "per_second": self.per_second(),
                "answer_ms": self.answer_ms(), "aborted": self.aborted}  # fmt: skip


def job(base: str, kind: str, tag: str, tokens: list[str], **bounds) -> dict:
    """A driver's job: `count`, `seconds` and `concurrency`, optionally `rate` and `offset`."""
    return {"base": base, "kind": kind, "tag": tag, "tokens": tokens, "timeout": 15.0, **bounds}


class Run:
    """One benchmark run: its sizes, the sink, the stack, the meters, the results so far."""

    def __init__(self, args, sizes: Sizes, sink: Sink, stack: Stack, postgres: PostgresWatcher):
        self.args, self.sizes, self.sink, self.stack = args, sizes, sink, stack
        self.postgres = postgres
        self.meter = CpuMeter(stack, postgres, REDIS_URL)
        self.base = ""

    def drive(self, jobs: list[dict], poll=None) -> Load:
        """One load process per job, all at once; `poll()` is called while they run. They are
        stopped if the bench database passes --max-connections, or overrun their bounds."""
        processes = []
        for n, each in enumerate(jobs):
            name = f"load-{uuid.uuid4().hex[:8]}-{n}"
            (RUN_DIR / f"{name}.job").write_text(json.dumps(each))
            argv = [sys.executable, str(LOAD), str(RUN_DIR / f"{name}.job"),
                    str(RUN_DIR / f"{name}.result")]  # fmt: skip
            with open(RUN_DIR / f"{name}.log", "wb") as log:
                processes.append((name, subprocess.Popen(argv, stdout=log, stderr=log)))
        bound = max(j["seconds"] + j["timeout"] for j in jobs) + 30
        deadline, aborted = time.monotonic() + bound, ""
        if self.postgres.over.is_set():
            deadline = time.monotonic()  # passed in an earlier phase: the stop applies at once
        while any(p.poll() is None for _, p in processes):
            if not aborted and self.postgres.over.is_set():
                aborted = f"the bench database passed {self.args.max_connections} connections"
            if not aborted and time.monotonic() > deadline:
                aborted = f"the load drivers ran past {bound:.0f}s"
            if aborted and time.monotonic() > deadline + 60:
                for _, process in processes:
                    process.kill()  # it did not stop when asked: no figures from it
            elif aborted:
                for _, process in processes:
                    if process.poll() is None:
                        process.terminate()  # the driver stops sending and writes what it has
            if poll:
                poll()
            time.sleep(0.1)
        if aborted:
            print(f"  ABORTED: {aborted}", flush=True)
        records, cpu = [], 0.0
        for name, process in processes:
            path = RUN_DIR / f"{name}.result"
            if not path.exists():
                tail = (RUN_DIR / f"{name}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"load driver {name} exited {process.returncode}:\n{tail}")
            found = json.loads(path.read_text())
            records += found["records"]
            cpu += found["cpu_seconds"]
        records.sort(key=lambda r: r[1])
        return Load(records, cpu, aborted)

    def measured(self, phase) -> dict:
        """Run `phase()` (it returns its figures and its Load) with the CPU each part spent."""
        before = self.meter.sample()
        figures, load = phase()
        after = self.meter.sample()
        extra = {"load drivers": load.cpu_seconds} if load else {}
        figures["cpu"] = CpuMeter.spent(before, after, extra)
        return figures

    def settle(self) -> bool:
        """Until the worker has nothing left to do (bounded): a phase measures only itself."""
        if "worker" not in self.stack.processes:
            time.sleep(2)
            return True
        return wait_idle(REDIS_URL, self.sizes.drain_seconds)


# ---------------------------------------------------------------------------------------------
# Phases: each returns its figures


def throughput(run: Run, kind: str, tokens: list[str], concurrency: int, count: int) -> dict:
    tag = f"tp-{kind}-{concurrency}-{uuid.uuid4().hex[:6]}"

    def phase():
        bounds = {"count": count, "concurrency": concurrency,
                  "seconds": run.sizes.throughput_seconds}  # fmt: skip
        load = run.drive([job(run.base, kind, tag, tokens, **bounds)])
        figures = {"kind": kind, "concurrency": concurrency, **load.summary()}
        if kind != "alertmanager":
            found = stored(load.ids)
            figures["stored"] = found
            figures["all_stored"] = found["occurrences"] == len(load.accepted)
        else:
            # Its notifications are still being sent: the next phase must not meet them (ours
            # are waited for by settle(), until the worker is idle).
            figures["all_notified"] = run.sink.wait_for(load.ids, run.sizes.drain_seconds)
        return figures, load

    return run.measured(phase)


def raises_at_64(run: Run, tokens: list[str], count: int) -> dict:
    figures = throughput(run, "raise", tokens, 64, count)
    figures["worker_idle_after"] = run.settle()
    return figures


def throughputs(run: Run, fixtures: Fixtures) -> dict:
    """Each (kind, concurrency) in turn; every Yealink GET from a phone not pressed before."""
    found = {}
    low, high = run.sizes.throughput_counts
    phones = fixtures.phone_tokens
    for kind in ("yealink", "raise"):
        for concurrency, count in ((1, low), (64, high)):
            print(f"throughput: {kind}, concurrency {concurrency} ...", flush=True)
            if kind == "yealink":
                tokens, phones = phones[:count], phones[count:]
            else:
                tokens = fixtures.raise_tokens
            figures = throughput(run, kind, tokens, concurrency, count)
            figures["worker_idle_after"] = run.settle()
            found[f"{kind} {concurrency}"] = figures
    return found


def latency(run: Run, kind: str, tokens: list[str], rate: float) -> dict:
    tag = f"lat-{kind}-{rate:g}-{uuid.uuid4().hex[:6]}"
    seconds = run.sizes.latency_seconds

    def phase():
        bounds = {"count": int(rate * seconds), "rate": rate, "concurrency": 64,
                  "seconds": seconds}  # fmt: skip
        load = run.drive([job(run.base, kind, tag, tokens, **bounds)])
        run.sink.wait_for(load.ids, run.sizes.drain_seconds)
        first = run.sink.first
        delays = [(first[r[4]] - r[1]) * 1000 for r in load.accepted if r[4] in first]
        sent = [r[1] for r in load.records]
        span = max(sent) - min(sent) if len(sent) > 1 else 0.0
        figures = {
            "rate": rate, **load.summary(),
            "achieved_rate": round((len(sent) - 1) / span, 1) if span else None,
            "send_lag_ms": percentiles([r[6] * 1000 for r in load.records]),
            "not_notified": len(load.accepted) - len(delays),
            "first_notification_ms": percentiles(delays),
        }  # fmt: skip
        return figures, load

    return run.measured(phase)


def latencies(run: Run, kind: str, tokens: list[str]) -> dict:
    found = {}
    for rate in run.sizes.latency_rates:
        print(f"latency: {kind} at {rate:g}/s ...", flush=True)
        found[f"{rate:g}/s"] = figures = latency(run, kind, tokens, rate)
        figures["worker_idle_after"] = run.settle()
    return found


def escalation(run: Run, fixtures: Fixtures) -> dict:
    """Alarms whose second step is due 10 s after their first ran; how late its post is."""
    print(f"escalation: {run.sizes.escalation_alarms} alarms ...", flush=True)
    due: dict[str, float] = {}  # alarm id -> its second step's due time, as stored

    def poll_due():
        # Between its first step and its second, an alarm's next_escalation_at is the second's
        # due time; each poll reads the alarms in that state.
        rows = Alarm.objects.filter(
            device__name__startswith="bench-escalation", current_step=0,
            next_escalation_at__isnull=False,
        ).values_list("pk", "next_escalation_at")  # fmt: skip
        for pk, at in rows:
            due.setdefault(str(pk), at.timestamp())

    polled = [0.0]

    def every_half_second():
        if time.monotonic() - polled[0] >= 0.5:
            polled[0] = time.monotonic()
            poll_due()

    def phase():
        sizes = run.sizes
        bounds = {
            "count": sizes.escalation_alarms,
            "rate": sizes.escalation_rate,
            "concurrency": 64,
            # Every alarm is sent even when the stack accepts fewer a second (bounded).
            "seconds": 3 * sizes.escalation_alarms / sizes.escalation_rate + 30,
        }
        tag = f"esc-{uuid.uuid4().hex[:6]}"
        load = run.drive([job(run.base, "raise", tag, fixtures.escalation_tokens, **bounds)],
                         poll=every_half_second)  # fmt: skip
        ids = load.ids
        deadline = time.monotonic() + sizes.drain_seconds
        while not set(ids) <= due.keys() and time.monotonic() < deadline:
            every_half_second()
            time.sleep(0.1)
        known = [pk for pk in ids if pk in due]
        last_due = max((due[pk] for pk in known), default=time.time())
        wait = max(0.0, last_due - time.time()) + sizes.drain_seconds
        keys = {pk: f"{pk}:notify:1:2" for pk in known}
        run.sink.wait_for_events(keys.values(), wait)
        events = run.sink.events
        lateness = [(events[key] - due[pk]) * 1000 for pk, key in keys.items() if key in events]
        figures = {
            "alarms": sizes.escalation_alarms, "rate": sizes.escalation_rate,
            "step_seconds": ESCALATION_STEP_SECONDS, **load.summary(),
            "first_step_not_seen": len(ids) - len(known),
            "second_step_missing": len(known) - len(lateness),
            "lateness_ms": percentiles(lateness),
            "early_ms": round(-min(lateness), 1) if lateness and min(lateness) < 0 else 0,
        }  # fmt: skip
        return figures, load

    figures = run.measured(phase)
    figures["worker_idle_after"] = run.settle()
    return figures


def storm(run: Run, kind: str, tokens: list[str]) -> dict:
    sizes = run.sizes
    print(f"storm: {sizes.storm_alarms} {kind} alarms as fast as accepted ...", flush=True)
    tag = f"storm-{kind}-{uuid.uuid4().hex[:6]}"
    processes = sizes.storm_processes
    share = -(-sizes.storm_alarms // processes)

    def phase():
        jobs = [
            job(run.base, kind, tag, tokens, offset=n * share,
                count=min(share, sizes.storm_alarms - n * share),
                concurrency=64 // processes, seconds=sizes.storm_seconds)
            for n in range(processes)
        ]  # fmt: skip
        load = run.drive(jobs)
        ids = load.ids
        start = min((r[1] for r in load.records), default=time.time())
        complete = run.sink.wait_for(ids, sizes.storm_seconds)
        first = run.sink.first
        notified = [first[pk] for pk in ids if pk in first]
        figures = {
            "alarms": sizes.storm_alarms, **load.summary(),
            # The API answers once the alarm is committed: the last answer is the last stored.
            "all_stored_after_seconds": round(load.span(), 2),
            "all_notified_after_seconds": round(max(notified) - start, 2) if complete else None,
            "notified": len(notified),
        }  # fmt: skip
        if kind != "alertmanager":
            figures["stored"] = stored(ids)
        # Late posts, and duplicates (a retry after a lost answer), come while the worker drains.
        figures["worker_idle_after"] = run.settle()
        figures["lost"] = sum(1 for pk in ids if pk not in first)
        figures["duplicated"] = run.sink.duplicated(ids)
        return figures, load

    return run.measured(phase)


def panels(run: Run) -> dict:
    sizes = run.sizes
    print(f"dc09: {sizes.dc09_connections} panels for {sizes.dc09_seconds:g} s ...", flush=True)
    site = Site.objects.get(name="Benchmark site")
    at_once = EscalationPolicy.objects.get(name="Benchmark: at once")

    def phase():
        figures = dc09.phase(run, site, at_once, sizes.dc09_connections, sizes.dc09_seconds)
        return figures, None

    figures = run.measured(phase)
    run.stack.stop("sia")
    figures["worker_idle_after"] = run.settle()
    return figures


def board(run: Run) -> dict:
    sizes = run.sizes
    print(f"board: {sizes.board_clients} WebSocket clients ...", flush=True)
    closed = close_open_alarms()
    out = RUN_DIR / "board.json"
    argv = [sys.executable, str(BOARD), "--url", run.base, "--clients", str(sizes.board_clients),
            "--alarms", str(sizes.board_alarms), "--rate", str(sizes.board_rate),
            "--json", str(out)]  # fmt: skip
    bound = 150 + sizes.board_alarms / sizes.board_rate + 30

    def phase():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(RUN_DIR / "board.log", "wb") as log:
            process = subprocess.run(argv, env=child_env(), stdout=log, stderr=log, timeout=bound)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The clients' process is the load driver here; it has exited, so it is counted as a
        # child this process waited for.
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if not out.exists():
            tail = (RUN_DIR / "board.log").read_text(errors="replace")[-2000:]
            return {"error": f"bench/board.py exited {process.returncode}:\n{tail}"}, None
        return {"closed_before": closed, **json.loads(out.read_text())}, Load([], cpu)

    return run.measured(phase)


# ---------------------------------------------------------------------------------------------
# Alertmanager under the same load


def alertmanager_binary() -> str | None:
    return next(filter(None, (shutil.which(name) for name in ALERTMANAGER_NAMES)), None)


def start_alertmanager(stack: Stack, binary: str, sink: Sink) -> str:
    """Alertmanager posting each alert, in a group of its own, to the sink at once. A group of
    one alert never has news to send after its first post, so group_interval (its default
    here) only sets how often each group's timer wakes: at 1 s, thousands of idle groups would
    each run the notification pipeline every second and slow Alertmanager for nothing."""
    config = {
        "route": {"receiver": "sink", "group_by": ["..."], "group_wait": "0s",
                  "group_interval": "5m", "repeat_interval": "24h"},
        "receivers": [{"name": "sink", "webhook_configs": [
            {"url": f"http://127.0.0.1:{sink.port}/alertmanager", "send_resolved": False}]}],
    }  # fmt: skip
    (RUN_DIR / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [binary, f"--config.file={RUN_DIR / 'alertmanager.yml'}",
            f"--storage.path={RUN_DIR / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no peers: nothing waits for a gossip round
            "--log.level=warn"]  # fmt: skip
    stack.start("alertmanager", argv, child_env())
    base = f"http://127.0.0.1:{port}"
    wait_answering(stack, f"{base}/-/ready", "Alertmanager")
    return base


def alertmanager(run: Run, phases: list[str]) -> dict:
    binary = alertmanager_binary()
    if binary is None:
        return {"installed": False}
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    found = {"installed": True, "version": (version.stdout or version.stderr).split("\n")[0]}
    run.base = start_alertmanager(run.stack, binary, run.sink)
    low, high = run.sizes.throughput_counts
    if "throughput" in phases:
        found["throughput"] = {}
        for concurrency, count in ((1, low), (64, high)):
            print(f"Alertmanager throughput, concurrency {concurrency} ...", flush=True)
            figures = throughput(run, "alertmanager", [], concurrency, count)
            found["throughput"][f"alertmanager {concurrency}"] = figures
            run.settle()
    if "latency" in phases:
        found["latency"] = latencies(run, "alertmanager", [])
    if "storm" in phases:
        found["storm"] = storm(run, "alertmanager", [])
    run.stack.stop("alertmanager")
    return found


# ---------------------------------------------------------------------------------------------
# The run


def sizes_from(args) -> Sizes:
    sizes = QUICK if args.quick else FULL
    overrides = {
        name: value
        for name in ("throughput_seconds", "latency_seconds", "escalation_alarms",
                     "escalation_rate", "storm_alarms", "board_clients", "board_alarms")
        if (value := getattr(args, name)) is not None
    }  # fmt: skip
    return replace(sizes, **overrides)


def worker_description(stack: Stack) -> str:
    processes = len(stack.pids("worker")) - 1
    return (
        f"prefork, concurrency default (os.cpu_count() = {os.cpu_count()}): {processes} processes"
    )


def run_phases(args, sink: Sink, stack: Stack, phases: list[str]) -> dict:
    sizes = sizes_from(args)
    result = {
        "started": datetime.now().isoformat(timespec="seconds"), "run_dir": str(RUN_DIR),
        "phases": phases, "sizes": asdict(sizes), "targets": TARGETS,
        "environment": {"cpus": os.cpu_count(), "loadavg_start": loadavg(),
                        "database": DATABASE_URL, "redis": REDIS_URL,
                        "storm_guard": "off: " + ", ".join(f"{k}=0" for k in STORM_GUARD_OFF)},
    }  # fmt: skip
    print(f"database {DATABASE_URL} (fresh), Redis {REDIS_URL} ...", flush=True)
    create_database(DATABASE_URL, fresh=True)
    migrate(child_env())
    redis.Redis.from_url(REDIS_URL).flushdb()
    phones = sum(sizes.throughput_counts) if "throughput" in phases else 0
    fixtures = prepare(sink.url, phones)
    with PostgresWatcher(DATABASE_URL, args.max_connections) as postgres:
        run = Run(args, sizes, sink, stack, postgres)
        env = result["environment"]
        env["postgres_max_connections"] = postgres_setting(DATABASE_URL, "max_connections")
        env["idle_busy_percent"] = idle_busy()  # before our stack starts: everyone else's work
        print("starting web, worker and beat ...", flush=True)
        run.base = start_broker(stack, celery_app, ["-n", "bench@%h"])
        env["worker"] = worker_description(stack)
        warm = run.drive([job(run.base, "raise", "warmup", fixtures.raise_tokens,
                              count=50, concurrency=4, seconds=30)])  # fmt: skip
        sink.wait_for(warm.ids, 30)
        run.settle()
        if "throughput" in phases:
            result["throughput"] = throughputs(run, fixtures)
        if "latency" in phases:
            result["latency"] = latencies(run, "raise", fixtures.raise_tokens)
        if "escalation" in phases:
            result["escalation"] = escalation(run, fixtures)
        if "storm" in phases:
            result["storm"] = storm(run, "raise", fixtures.raise_tokens)
        if "dc09" in phases:
            result["dc09"] = panels(run)
        if "board" in phases:
            result["board"] = board(run)
        if "nodes" in phases:
            result["nodes"] = nodes.phase(run, raises_at_64, fixtures.raise_tokens,
                                          run.sizes.throughput_counts[1])  # fmt: skip
        result["duplicated_over_the_run"] = sink.repeats
        result["postgres_connections_peak"] = postgres.peak
        stack.stop()
        compared = [p for p in phases if p in COMPARED]
        if compared and not args.no_alertmanager:
            result["alertmanager"] = alertmanager(run, compared)
    result["environment"]["loadavg_end"] = loadavg()
    return result


# ---------------------------------------------------------------------------------------------
# The table


def verdict(met: bool | None) -> str:
    return "" if met is None else ("MET" if met else "MISSED")


def ratio(ours, theirs) -> str:
    if not isinstance(ours, int | float) or not isinstance(theirs, int | float) or not theirs:
        return ""
    value = ours / theirs
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def rate_cell(figures: dict | None) -> str:
    if not figures:
        return "-"
    errors = sum(figures["errors"].values())
    return f"{figures['per_second']}/s, {errors} err"


def ms_cell(stats: dict | None) -> str:
    if not stats or not stats.get("n"):
        return "-"
    return "/".join(f"{stats[p]:.0f}" for p in ("p50", "p95", "p99", "max"))


def throughput_rows(result: dict, theirs: dict) -> list:
    rows = [("trigger throughput, accepted/s (errors)",)]
    ours = result.get("throughput", {})
    for key, label in (("yealink 1", "Yealink GET, concurrency 1"),
                       ("yealink 64", "Yealink GET, concurrency 64"),
                       ("raise 1", "JSON raise, concurrency 1"),
                       ("raise 64", "JSON raise, concurrency 64")):  # fmt: skip
        figures = ours.get(key)
        other = theirs.get(key.replace("raise", "alertmanager")) if "raise" in key else None
        target, met = "", None
        if key.endswith(" 64") and figures:
            target = f">= {TARGETS['throughput_per_second']}/s, all stored"
            met = (figures["per_second"] or 0) >= TARGETS["throughput_per_second"] and figures[
                "all_stored"
            ]
        rows.append((f"  {label}", rate_cell(figures), rate_cell(other),
                     ratio(figures and figures["per_second"], other and other["per_second"]),
                     target, verdict(met)))  # fmt: skip
    stored_cells = [
        f"{f['stored']['occurrences']} of {f['accepted']}" for f in ours.values() if "stored" in f
    ]
    rows.append(("  stored in the database, each run", ", ".join(stored_cells)))
    return rows


def latency_rows(result: dict, theirs: dict) -> list:
    rows = [("trigger -> first notification at the sink, ms p50/p95/p99/max",)]
    for key, figures in result.get("latency", {}).items():
        other = theirs.get(key)
        target, met = "", None
        if figures["rate"] == TARGETS["first_notification_rate"]:
            limit = TARGETS["first_notification_p99_ms"]
            target = f"p99 <= {limit} ms"
            p99 = figures["first_notification_ms"].get("p99")
            achieved = (figures["achieved_rate"] or 0) >= 0.95 * figures["rate"]
            met = bool(p99 is not None and p99 <= limit and achieved
                       and not figures["not_notified"] and not figures["errors"])  # fmt: skip
        rows.append((f"  {key}", ms_cell(figures["first_notification_ms"]),
                     ms_cell(other and other["first_notification_ms"]),
                     ratio(figures["first_notification_ms"].get("p99"),
                           other and other["first_notification_ms"].get("p99")),
                     target, verdict(met)))  # fmt: skip
        rows.append(("    sent at (achieved/s), errors, not notified", sent_cell(figures),
                     sent_cell(other)))  # fmt: skip
    return rows


def sent_cell(figures: dict | None) -> str:
    if not figures:
        return "-"
    errors = sum(figures["errors"].values())
    return f"{figures['achieved_rate']}/s, {errors}, {figures['not_notified']}"


def escalation_rows(result: dict) -> list:
    figures = result.get("escalation")
    if not figures:
        return []
    stats, limit = figures["lateness_ms"], TARGETS["escalation_lateness_p99_ms"]
    met = bool(stats.get("n") and stats["p99"] <= limit and not figures["second_step_missing"]
               and not figures["first_step_not_seen"]
               and figures["accepted"] == figures["alarms"])  # fmt: skip
    cell = (
        "-" if not stats.get("n") else f"{stats['p50']:.0f}/{stats['p99']:.0f}/{stats['max']:.0f}"
    )
    return [
        (f"escalation lateness of the second step ({figures['step_seconds']} s), ms",),
        (f"  {figures['accepted']} alarms at {figures['rate']:g}/s: p50/p99/max", cell,
         "(no steps)", "", f"p99 <= {limit} ms", verdict(met)),
        ("    sent within the time bound, errors",
         f"{figures['sent']} of {figures['alarms']}, {sum(figures['errors'].values())}"),
        ("    second steps missing, first steps not seen",
         f"{figures['second_step_missing']}, {figures['first_step_not_seen']}"),
    ]  # fmt: skip


def storm_rows(result: dict, theirs: dict | None) -> list:
    figures = result.get("storm")
    if not figures:
        return []
    theirs = theirs or {}
    limit = TARGETS["storm_seconds"]
    done = figures["all_notified_after_seconds"]
    complete = figures["accepted"] == figures["alarms"] and done is not None
    clean = figures["lost"] == 0 and figures["duplicated"] == 0
    stored_cell = f"{figures['all_stored_after_seconds']} s"
    if "stored" in figures:
        stored_cell += f" ({figures['stored']['rows']} rows)"

    def seconds(value):
        return "not all" if value is None else f"{value} s"

    return [
        (f"storm: {figures['alarms']} alarms as fast as accepted",),
        ("  accepted/s (errors)", rate_cell(figures), rate_cell(theirs),
         ratio(figures["per_second"], theirs.get("per_second"))),
        ("  all stored after", stored_cell,
         seconds(theirs.get("all_stored_after_seconds")) if theirs else "-"),
        ("  all first notifications at the sink after", seconds(done),
         seconds(theirs.get("all_notified_after_seconds")) if theirs else "-",
         ratio(done, theirs.get("all_notified_after_seconds")), f"<= {limit} s",
         verdict(complete and done <= limit)),
        ("    worker idle at the end (else: late, maybe not lost)",
         "yes" if figures["worker_idle_after"] else "no"),
        ("  lost / duplicated notifications", f"{figures['lost']} / {figures['duplicated']}",
         f"{theirs['lost']} / {theirs['duplicated']}" if theirs else "-", "", "0 / 0",
         verdict(clean)),
    ]  # fmt: skip


def board_rows(result: dict) -> list:
    figures = result.get("board")
    if not figures:
        return []
    if "error" in figures:
        return [("board", "FAILED: see board.log")]

    def cell(name):
        return ms_cell(figures.get(name))

    rows = [(f"board: event delay to {figures['clients']} WebSocket clients, ms p50/p95/p99/max",),
            (f"  {figures['alarms']} alarms at {figures['rate']:g}/s, from the raise request",
             cell("from API request ms"), "(no board)"),
            ("    from the raise's answer (0: the event came first)",
             cell("from API answer ms")),
            ("  events received / expected",
             f"{figures['events_received']} / {figures['events_expected']}")]  # fmt: skip
    return rows


def cpu_line(name: str, figures: dict) -> str:
    cpu = figures.get("cpu")
    if not cpu:
        return ""
    parts = ", ".join(
        f"{part} {seconds:.1f}" for part, seconds in cpu["cpu_seconds"].items() if seconds >= 0.05
    )
    busy = cpu["machine_busy_percent"]
    return f"  {name} ({cpu['seconds']:.0f} s, machine {busy:.0f}% busy): {parts}"


def phase_figures(result: dict) -> list[tuple[str, dict]]:
    """(name, figures) of every measured part of a phase, ours then Alertmanager's."""
    found = []
    for owner, source in (("", result), ("Alertmanager ", result.get("alertmanager", {}))):
        for phase in ("throughput", "latency"):
            for key, figures in source.get(phase, {}).items():
                found.append((f"{owner}{phase} {key.removeprefix('alertmanager ')}", figures))
        for phase in ("escalation", "storm", "dc09", "board"):
            if phase in source:
                found.append((f"{owner}{phase}", source[phase]))
        for key, figures in source.get("nodes", {}).items():
            if isinstance(figures, dict):
                found.append((f"{owner}nodes, {key}", figures))
    return found


def cpu_lines(result: dict) -> list[str]:
    lines = [cpu_line(name, figures) for name, figures in phase_figures(result)]
    return [line for line in lines if line]


def table(result: dict) -> str:
    env, theirs = result["environment"], result.get("alertmanager", {})
    header = [
        f"Alarm broker benchmark {result['started']} on {env['cpus']} CPUs",
        f"  load average {' '.join(map(str, env['loadavg_start']))} at start, "
        f"{' '.join(map(str, env['loadavg_end']))} at end; machine "
        f"{env['idle_busy_percent']}% busy before the stack started (others' work)",
        f"  web: python -m alarmsite.serve; worker: {env.get('worker', '-')}; beat; "
        f"PostgreSQL {env['postgres_max_connections']} max connections, at most "
        f"{result['postgres_connections_peak']} to the bench database",
        f"  storm guard {env['storm_guard']} (every alarm notifies on its own)",
        "  Alertmanager: "
        + (
            theirs.get("version", "installed")
            if theirs.get("installed")
            else "not installed"
            if theirs
            else "not run"
        ),  # fmt: skip
    ]
    rows = [("", "ours", "Alertmanager", "ours/AM", "target", "")]
    if "throughput" in result:
        rows += throughput_rows(result, theirs.get("throughput", {}))
    if "latency" in result:
        rows += latency_rows(result, theirs.get("latency", {}))
    rows += escalation_rows(result)
    rows += storm_rows(result, theirs.get("storm"))
    rows += dc09.rows(result.get("dc09"), TARGETS["dc09_per_second"])
    rows += board_rows(result)
    rows += nodes.rows(result.get("nodes"))
    widths = (48, 20, 20, 9, 22, 6)
    lines = [*header, ""]
    for row in rows:
        if len(row) == 1:
            lines.append(row[0])
            continue
        cells = list(row) + [""] * (len(widths) - len(row))
        line = cells[0].ljust(widths[0]) + "".join(
            str(cell).rjust(width) if i < 3 else "  " + str(cell).ljust(width - 2)
            for i, (cell, width) in enumerate(zip(cells[1:], widths[1:], strict=True), start=1)
        )
        lines.append(line.rstrip())
    lines += ["", "CPU seconds by part (load drivers are the benchmark's own clients):"]
    lines += cpu_lines(result)
    for name, figures in phase_figures(result):
        if figures.get("aborted"):
            lines.append(f"ABORTED {name}: {figures['aborted']}; its figures cover what was sent")
    duplicated = result.get("duplicated_over_the_run")
    lines.append(f"duplicated notifications over the whole run: {duplicated}")
    return "\n".join(lines)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help=f"comma-separated phases of {', '.join(PHASES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: a run of minutes")
    parser.add_argument("--no-alertmanager", action="store_true", help="skip the comparison")
    parser.add_argument("--throughput-seconds", type=float)
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--escalation-alarms", type=int)
    parser.add_argument("--escalation-rate", type=float)
    parser.add_argument("--storm-alarms", type=int)
    parser.add_argument("--board-clients", type=int)
    parser.add_argument("--board-alarms", type=int)
    parser.add_argument(
        "--max-connections", type=int, default=40,
        help="stop the load once the bench database has more connections than this",
    )  # fmt: skip
    args = parser.parse_args()
    phases = [p.strip() for p in (args.only or ",".join(PHASES)).split(",") if p.strip()]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return args, [p for p in PHASES if p in phases]


def main() -> int:
    args, phases = parse_args()
    result = run_stack(RUN_DIR, lambda sink, stack: run_phases(args, sink, stack, phases))
    if result is None:
        return 130  # interrupted
    text = table(result)
    result["table"] = text
    print()
    print(text)
    write_result(result, "bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
