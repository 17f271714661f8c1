"""Fan-out benchmark: the delay from raising an alarm to its first webhook delivery, and how
many deliveries one worker process completes a second, on the production shape of one machine.

    .venv/bin/python bench/fanout.py --alarms 1000 --rate 50 --burst 2000

It starts its own stack against its own PostgreSQL database (BENCH_DATABASE_URL, default
alarmbroker_bench, created and migrated here) and its own Redis database (BENCH_REDIS_URL,
default db 5, emptied first): the web process (daphne, as `python -m alarmsite.serve`), one
Celery worker (prefork unless --pool says otherwise), beat. A threaded HTTP server in this
process stands in for the provider. Phases:

1. in-process cost: SQL queries and milliseconds of one raise, its step and its delivery;
2. steady rate: --alarms raised over HTTP at --rate a second, each timed from the request to
   its first post arriving at the sink, split into stages by the rows' timestamps;
3. bursts: --burst deliveries made pending at once (the deliver task alone), then --burst
   alarms made due at once (escalate and deliver), each timed until the sink has them all.

One table on stdout and bench/results/fanout-<timestamp>.json; the processes' logs stay in the
temporary directory named at the end. Every process it started is stopped, also on Ctrl-C.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import redis
import requests
from stack import (
    CpuMeter,
    PostgresWatcher,
    Sink,
    Stack,
    child_env,
    children,
    configure,
    create_database,
    env_pairs,
    idle_busy,
    loadavg,
    machine_line,
    migrate,
    percentiles,
    postgres_setting,
    run_stack,
    start_broker,
    wait_idle,
    write_result,
)

# It measures one message per alarm, at rates the storm guard would fold into digests.
DATABASE_URL, REDIS_URL, RUN_DIR = configure(
    "fanout", "postgres://postgres@127.0.0.1:5432/alarmbroker_bench", "redis://127.0.0.1:6379/5"
)
NAME = "fanout-bench"

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from alarms import engine, lifecycle  # noqa: E402
from alarms.models import Alarm  # noqa: E402
from alarms.timeline import Actor  # noqa: E402
from alarmsite.celery import app as celery_app  # noqa: E402
from core.task_queue import enqueue  # noqa: E402
from devices.models import Device, Room, Site  # noqa: E402
from escalation.models import EscalationPolicy, EscalationStep  # noqa: E402
from notifications.delivery import queueing, sending, targets  # noqa: E402
from notifications.models import Delivery, NotificationChannel  # noqa: E402

# A step delay the countdown fast path and the sweeper both leave alone during the run.
HOLD_SECONDS = 3600


# ---------------------------------------------------------------------------------------------
# Database, fixtures, stack


@dataclass
class Fixtures:
    tokens: list[str]  # devices whose policy notifies the sink at once
    hold_device: Device  # its policy's only step waits an hour


def prepare(sink_url: str, devices: int) -> Fixtures:
    """The benchmark's site, channel, policies and devices; earlier runs' alarms deleted."""
    Alarm.objects.filter(device__name__startswith=NAME).delete()
    site, _ = Site.objects.get_or_create(name="Fan-out benchmark site")
    room, _ = Room.objects.get_or_create(site=site, name="Fan-out benchmark room")
    channel, _ = NotificationChannel.objects.update_or_create(
        name=f"{NAME} sink",
        defaults={"kind": "webhook", "config": {"url": sink_url}, "enabled": True},
    )
    now_policy = one_step_policy(f"{NAME} now", 0, channel)
    hold_policy = one_step_policy(f"{NAME} hold", HOLD_SECONDS, channel)
    tokens = [device_token(f"{NAME}-{i}", room, now_policy)[1] for i in range(devices)]
    hold_device, _ = device_token(f"{NAME}-hold", room, hold_policy)
    return Fixtures(tokens, hold_device)


def one_step_policy(name: str, delay: int, channel) -> EscalationPolicy:
    policy, _ = EscalationPolicy.objects.update_or_create(name=name, defaults={"repeat_count": 0})
    step, _ = EscalationStep.objects.update_or_create(
        policy=policy, order=0, defaults={"delay_seconds": delay, "methods": []}
    )
    step.channels.set([channel])
    step.persons.clear()
    policy.steps.exclude(pk=step.pk).delete()
    return policy


def device_token(name: str, room, policy) -> tuple[Device, str]:
    device = Device.objects.filter(name=name).first() or Device(name=name)
    token = device.rotate_token()
    device.room, device.kind, device.enabled = room, Device.Kind.GENERIC, True
    # Far above the run's rate: the benchmark measures fan-out, not the limiter.
    device.rate_limit_per_minute = 1_000_000
    device.default_policy = policy
    device.save()
    return device, token


def start_stack(stack: Stack, args, extra_env: dict[str, dict]) -> str:
    worker = ["-n", f"{NAME}@%h", "--pool", args.pool]
    if args.concurrency:
        worker += ["--concurrency", str(args.concurrency)]
    return start_broker(stack, celery_app, worker, extra_env)


# ---------------------------------------------------------------------------------------------
# Phase 1: in-process cost of one alarm's path


def in_process_cost(token: str, samples: int) -> dict:
    """Queries and time of the raise view, the step and the delivery, one alarm at a time,
    in this process against an idle database (the stack is not started yet). The SQL of the
    last sample is written to queries.txt in the run's directory."""
    client = Client()
    stages = {"raise (HTTP view)": [], "escalate (run_due_step)": [], "deliver (attempt)": []}
    for i in range(samples + 1):  # the first warms the caches and is not counted
        body = json.dumps({"title": f"Query count {i}", "dedup_key": uuid.uuid4().hex})
        response, raise_cost = measured(
            client.post, "/v1/alarms/raise", data=body, content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1",
        )  # fmt: skip
        alarm_id = response.json()["alarm_id"]
        _, step_cost = measured(engine.run_due_step, alarm_id)
        status, deliver_cost = measured(sending.attempt, Delivery.objects.get(alarm_id=alarm_id).pk)
        if status != "sent":
            raise SystemExit(f"in-process delivery was not sent: {status}")
        if i:
            costs = (raise_cost, step_cost, deliver_cost)
            for rows, cost in zip(stages.values(), costs, strict=True):
                rows.append(cost)
    with open(RUN_DIR / "queries.txt", "w") as out:
        for name, rows in stages.items():
            sql = rows[-1][0]
            out.write(f"== {name}: {len(sql)} queries\n" + "\n".join(sql) + "\n\n")
    return {
        name: {
            "queries": min(len(row[0]) for row in rows),  # without health-check pings
            "ms_median": round(statistics.median(row[1] for row in rows), 1),
            "cpu_ms_median": round(statistics.median(row[2] for row in rows), 1),
        }
        for name, rows in stages.items()
    }


def measured(function, *args, **kwargs):
    """Call it; return its result and (its SQL, wall ms, this process's CPU ms)."""
    with CaptureQueriesContext(connection) as queries:
        started, cpu = time.perf_counter(), time.process_time()
        result = function(*args, **kwargs)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return result, ([q["sql"] for q in queries.captured_queries], wall * 1000, cpu * 1000)


# ---------------------------------------------------------------------------------------------
# Phase 2: a steady rate over HTTP


@dataclass
class Raised:
    sent: float  # time.time() just before the request
    answered: float
    status: int
    alarm_id: str | None
    error: str = ""
    lag: float = 0.0  # seconds the send was late on the schedule (every thread was busy)


def drive(
    base: str, tokens: list[str], count: int, rate: float, tag: str, stop: threading.Event
) -> list[Raised]:
    """Raise `count` alarms at a fixed rate (open loop: a slow answer delays no later send,
    up to the thread pool's size), until `stop` is set."""
    local = threading.local()
    url = f"{base}/v1/alarms/raise"

    def raise_one(index: int, scheduled: float) -> Raised:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        body = {"title": f"Fan-out benchmark {tag} {index}", "severity": "critical",
                "dedup_key": f"{tag}-{index}-{uuid.uuid4().hex}"}  # fmt: skip
        headers = {"Authorization": f"Bearer {tokens[index % len(tokens)]}"}
        lag = max(0.0, time.monotonic() - scheduled)
        sent = time.time()
        try:
            response = local.session.post(url, json=body, headers=headers, timeout=30)
        except requests.RequestException as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            return Raised(sent, time.time(), 0, None, error, lag)
        answered = time.time()
        if response.status_code != 201:
            return Raised(sent, answered, response.status_code, None, response.text[:200], lag)
        return Raised(sent, answered, 201, response.json()["alarm_id"], "", lag)

    # Each request in flight is a thread and a database connection in daphne: bounded.
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        start = time.monotonic()
        for index in range(count):
            scheduled = start + index / rate
            time.sleep(max(0.0, scheduled - time.monotonic()))
            if stop.is_set():
                break
            futures.append(pool.submit(raise_one, index, scheduled))
        return [future.result() for future in futures]


def stages(raised: list[Raised], sink: Sink) -> dict:
    """Where the time went, from the rows' own timestamps (one clock: one machine)."""
    by_id = {r.alarm_id: r for r in raised if r.alarm_id}
    alarm_rows = dict(Alarm.objects.filter(pk__in=by_id).values_list("pk", "created_at"))
    delivery_rows = Delivery.objects.filter(
        alarm_id__in=by_id, event="notify", step=0, round=0
    ).values_list("alarm_id", "created_at", "sent_at", "latency_ms")
    parts = {
        "request -> alarm row": [], "alarm row -> API answer": [],
        "alarm row -> delivery row (escalate task)": [],
        "delivery row -> sink (deliver task)": [], "sink -> marked sent": [],
        "transport call (latency_ms)": [],
    }  # fmt: skip
    for alarm_id, delivery_created, sent_at, latency_ms in delivery_rows:
        request, arrived = by_id[str(alarm_id)], sink.first.get(str(alarm_id))
        created = alarm_rows[alarm_id].timestamp()
        parts["request -> alarm row"].append((created - request.sent) * 1000)
        parts["alarm row -> API answer"].append((request.answered - created) * 1000)
        parts["alarm row -> delivery row (escalate task)"].append(
            (delivery_created.timestamp() - created) * 1000
        )
        if arrived is not None:
            parts["delivery row -> sink (deliver task)"].append(
                (arrived - delivery_created.timestamp()) * 1000
            )
            if sent_at is not None:
                parts["sink -> marked sent"].append((sent_at.timestamp() - arrived) * 1000)
        if latency_ms is not None:
            parts["transport call (latency_ms)"].append(float(latency_ms))
    return {name: percentiles(values) for name, values in parts.items()}


def steady_rate(args, base: str, fixtures: Fixtures, sink: Sink, meter: CpuMeter) -> dict:
    connections = meter.postgres
    connections.reset_peak()
    before, repeats = meter.sample(), sink.repeats
    raised = drive(base, fixtures.tokens, args.alarms, args.rate, "rate", connections.over)
    accepted = [r for r in raised if r.alarm_id]
    sink.wait_for((r.alarm_id for r in accepted), args.drain)
    after = meter.sample()
    sent_span = raised[-1].sent - raised[0].sent if len(raised) > 1 else 0.0
    first = sink.first
    delays = [(first[r.alarm_id] - r.sent) * 1000 for r in accepted if r.alarm_id in first]
    errors: dict[str, int] = {}
    for r in raised:
        if not r.alarm_id:
            key = f"{r.status} {r.error[:80]}"
            errors[key] = errors.get(key, 0) + 1
    cpu = CpuMeter.spent(before, after)
    return {
        "alarms": args.alarms,
        "rate": args.rate,
        "achieved_rate": round((len(raised) - 1) / sent_span, 1) if sent_span else None,
        "accepted": len(accepted),
        "errors": errors,
        "not_delivered": len(accepted) - len(delays),
        "repeated_posts": sink.repeats - repeats,
        "postgres_connections_peak": connections.peak,
        "aborted": (
            f"stopped after {len(raised)} alarms: the bench database had more than "
            f"{args.max_connections} connections"
            if connections.over.is_set()
            else ""
        ),
        "send_lag_ms": percentiles([r.lag * 1000 for r in raised]),
        "api_answer_ms": percentiles([(r.answered - r.sent) * 1000 for r in accepted]),
        "first_delivery_ms": percentiles(delays),
        "stages_ms": stages(raised, sink),
        "cpu": cpu,
        "cpu_ms_per_alarm": {
            name: round(seconds * 1000 / max(1, len(accepted)), 1)
            for name, seconds in cpu["cpu_seconds"].items()
        },
    }


# ---------------------------------------------------------------------------------------------
# Phase 3: bursts


def held_alarms(device: Device, count: int, tag: str) -> list:
    """Open alarms whose step waits an hour: nothing is queued for them yet."""
    actor = Actor("fan-out benchmark")
    ids = []
    for index in range(count):
        outcome = lifecycle.raise_alarm(
            source="bench", dedup_key=f"device:{device.pk}:{tag}-{index}-{uuid.uuid4().hex}",
            title=f"Fan-out benchmark {tag} {index}", actor=actor, device=device,
        )  # fmt: skip
        ids.append(outcome.alarm.pk)
    return ids


def deliveries_burst(ids: list, sink: Sink, meter: CpuMeter, timeout: float) -> dict:
    """Pending deliveries for every alarm, created in one transaction: their tasks are all
    queued at its commit, so the worker runs only deliver tasks."""
    committed = []
    with transaction.atomic():
        # Registered first, so it runs right after COMMIT, before the tasks are queued.
        transaction.on_commit(lambda: committed.append(time.time()))
        for alarm in Alarm.objects.filter(pk__in=ids):
            made, _, _ = targets.create_for_step(alarm, alarm.steps_snapshot[0], 0, 0)
            queueing.enqueue_on_commit([row.pk for row in made])
        before = meter.sample()
    return burst_result(ids, sink, meter, timeout, before, committed[0])


def escalations_burst(ids: list, sink: Sink, meter: CpuMeter, timeout: float) -> dict:
    """Every alarm's step due now and its escalate task queued, as a raise queues it: the
    worker runs the step, then the delivery, for each."""
    Alarm.objects.filter(pk__in=ids).update(next_escalation_at=timezone.now())
    tokens = list(Alarm.objects.filter(pk__in=ids).values_list("pk", "escalation_token"))
    before, started = meter.sample(), time.time()
    for pk, token in tokens:
        enqueue("escalation.tasks.escalate", str(pk), str(token))
    return burst_result(ids, sink, meter, timeout, before, started)


def burst_result(ids: list, sink: Sink, meter: CpuMeter, timeout: float, before, started) -> dict:
    """From `started` (the work began to be queued) until the sink has a post per alarm."""
    queued = time.time()
    complete = sink.wait_for((str(pk) for pk in ids), timeout)
    after = meter.sample()
    arrivals = sorted(sink.first[str(pk)] for pk in ids if str(pk) in sink.first)
    if not arrivals:
        return {"count": len(ids), "delivered": 0, "complete": False}
    elapsed, steady = arrivals[-1] - started, arrivals[-1] - arrivals[0]
    cpu = CpuMeter.spent(before, after)
    return {
        "count": len(ids),
        "delivered": len(arrivals),
        "complete": complete,
        "queue_seconds": round(queued - started, 2),
        "first_after_ms": round((arrivals[0] - started) * 1000, 1),
        "all_after_seconds": round(elapsed, 2),
        "per_second": round(len(arrivals) / elapsed, 1),
        "steady_per_second": round((len(arrivals) - 1) / steady, 1) if steady else None,
        "cpu": cpu,
        "worker_cpu_ms_each": round(cpu["cpu_seconds"]["worker"] * 1000 / len(arrivals), 1),
    }


# ---------------------------------------------------------------------------------------------
# Report


def row(label: str, stats: dict) -> str:
    if not stats.get("n"):
        return f"  {label:<44} (none)"
    return (
        f"  {label:<44} {stats['p50']:>8} {stats['p95']:>8} {stats['p99']:>8} "
        f"{stats['max']:>8} {stats['mean']:>8}"
    )


def print_table(result: dict) -> None:
    env, rate = result["environment"], result["steady_rate"]
    print()
    print(f"Fan-out benchmark {result['started']}  ({env['cpus']} CPUs)")
    print(f"  load average at start {env['loadavg_start']}, at end {env['loadavg_end']}; "
          f"machine busy {env['idle_busy_percent']}% with the stack idle")  # fmt: skip
    print(f"  worker: {env['worker']}; extra env: {env['extra_env'] or 'none'}")
    print()
    print("in-process cost of one alarm (idle stack, median of samples)")
    for name, cost in result["in_process"].items():
        print(
            f"  {name:<44} {cost['queries']:>3} queries  {cost['ms_median']:>6} ms "
            f"({cost['cpu_ms_median']} ms CPU in this process)"
        )
    print()
    print(
        f"steady rate: {rate['alarms']} alarms at {rate['rate']:g}/s "
        f"(achieved {rate['achieved_rate']}/s) over {env['devices']} devices"
    )
    if rate["aborted"]:
        print(f"  ABORTED: {rate['aborted']}")
    print(f"  accepted {rate['accepted']}, errors {sum(rate['errors'].values())}, "
          f"accepted but not delivered {rate['not_delivered']}, "
          f"posted twice {rate['repeated_posts']}")  # fmt: skip
    for error, count in rate["errors"].items():
        print(f"    {count} x {error}")
    print(f"  {'(ms)':<44} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} {'mean':>8}")
    print(row("send lag (scheduled -> sent)", rate["send_lag_ms"]))
    print(row("API answer", rate["api_answer_ms"]))
    print(row("TRIGGER -> FIRST DELIVERY AT SINK", rate["first_delivery_ms"]))
    for name, stats in rate["stages_ms"].items():
        print(row(f"  {name}", stats))
    spent = ", ".join(f"{k} {v}" for k, v in rate["cpu_ms_per_alarm"].items())
    print(f"  CPU ms per alarm: {spent}")
    print(machine_line(rate["cpu"]))
    print(f"  PostgreSQL backends of the bench database: at most "
          f"{rate['postgres_connections_peak']} at once (max_connections "
          f"{env['postgres_max_connections']}, shared with every database)")  # fmt: skip
    for name, burst in result["bursts"].items():
        print()
        if isinstance(burst, bool):
            print(f"{name}: {'yes' if burst else 'NO (timed out): the bursts include the backlog'}")
            continue
        if not burst.get("delivered"):
            print(f"{name}: nothing delivered")
            continue
        print(
            f"{name}: {burst['delivered']}/{burst['count']} in {burst['all_after_seconds']}s "
            f"= {burst['per_second']}/s ({burst['steady_per_second']}/s first to last; "
            f"queued in {burst['queue_seconds']}s, first after {burst['first_after_ms']} ms)"
        )
        print(f"  worker CPU {burst['worker_cpu_ms_each']} ms each")
        print(machine_line(burst["cpu"]))
    target = rate["first_delivery_ms"].get("p99")
    met = target is not None and target < 250 and not (rate["not_delivered"] or rate["aborted"])
    verdict = "met" if met else "MISSED"
    print()
    print(f"target p99 trigger -> first delivery < 250 ms at {rate['rate']:g}/s: {verdict}")


def worker_description(stack: Stack, args) -> str:
    pool_processes = len(children(stack.processes["worker"].pid))
    asked = args.concurrency or f"default (os.cpu_count() = {os.cpu_count()})"
    return f"--pool {args.pool}, --concurrency {asked}, {pool_processes} pool processes"


def run(args, sink: Sink, stack: Stack) -> dict:
    extra = {
        "all": env_pairs(args.env),
        "web": env_pairs(args.web_env),
        "worker": env_pairs(args.worker_env),
    }
    result = {"started": datetime.now().isoformat(timespec="seconds"), "run_dir": str(RUN_DIR)}
    loadavg_start = loadavg()
    create_database(DATABASE_URL)
    migrate(child_env(extra["all"]))
    redis.Redis.from_url(REDIS_URL).flushdb()
    fixtures = prepare(sink.url, args.devices)
    print("in-process cost ...", flush=True)
    result["in_process"] = in_process_cost(fixtures.tokens[0], args.samples)
    redis.Redis.from_url(REDIS_URL).flushdb()  # what it queued already ran here

    base = start_stack(stack, args, extra)
    with PostgresWatcher(DATABASE_URL, args.max_connections) as postgres:
        result["environment"] = {
            "cpus": os.cpu_count(),
            "loadavg_start": loadavg_start,
            "idle_busy_percent": idle_busy(),
            "worker": worker_description(stack, args),
            "extra_env": {k: v for k, v in extra.items() if v},
            "postgres_max_connections": postgres_setting(DATABASE_URL, "max_connections"),
            "devices": args.devices,
            "database": DATABASE_URL,
            "redis": REDIS_URL,
        }
        meter = CpuMeter(stack, postgres, REDIS_URL)
        print(f"warm-up: {args.warmup} alarms ...", flush=True)
        warm = drive(base, fixtures.tokens, args.warmup, args.rate, "warmup", postgres.over)
        sink.wait_for((r.alarm_id for r in warm if r.alarm_id), args.drain)
        stack.check()
        print(f"steady rate: {args.alarms} alarms at {args.rate:g}/s ...", flush=True)
        result["steady_rate"] = steady_rate(args, base, fixtures, sink, meter)
        stack.check()
        result["bursts"] = bursts(args, fixtures, sink, meter, stack) if args.burst else {}
    result["environment"]["loadavg_end"] = loadavg()
    result["environment"]["worker"] = worker_description(stack, args)
    return result


def bursts(args, fixtures: Fixtures, sink: Sink, meter: CpuMeter, stack: Stack) -> dict:
    # The bursts need no web process; stopping it frees whatever connections it holds.
    stack.stop("web")
    print("waiting for the worker to finish the steady phase's backlog ...", flush=True)
    found = {"worker idle before the bursts": wait_idle(REDIS_URL, args.burst_timeout)}
    print(f"burst: {args.burst} deliveries at once ...", flush=True)
    ids = held_alarms(fixtures.hold_device, args.burst, "deliveries")
    name = f"burst of {args.burst} pending deliveries (deliver tasks only), deliveries/s"
    found[name] = deliveries_burst(ids, sink, meter, args.burst_timeout)
    stack.check()
    print(f"burst: {args.burst} alarms due at once ...", flush=True)
    ids = held_alarms(fixtures.hold_device, args.burst, "escalations")
    name = f"burst of {args.burst} due alarms (escalate + deliver tasks), alarms/s"
    found[name] = escalations_burst(ids, sink, meter, args.burst_timeout)
    stack.check()
    return found


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alarms", type=int, default=1000, help="alarms in the steady phase")
    parser.add_argument("--rate", type=float, default=50.0, help="alarms per second")
    parser.add_argument("--devices", type=int, default=10, help="devices the alarms come from")
    parser.add_argument("--burst", type=int, default=2000, help="size of each burst (0: none)")
    parser.add_argument("--warmup", type=int, default=25, help="alarms before measuring")
    parser.add_argument("--samples", type=int, default=10, help="in-process cost samples")
    parser.add_argument("--pool", default="prefork", help="the worker's --pool")
    parser.add_argument("--concurrency", type=int, help="the worker's --concurrency")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the rest")
    parser.add_argument("--burst-timeout", type=float, default=300.0)
    parser.add_argument(
        "--max-connections", type=int, default=40,
        help="stop raising once the bench database has more connections than this",
    )  # fmt: skip
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment for web, worker and beat, e.g. CONN_MAX_AGE=0 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--web-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the web process only")  # fmt: skip
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the worker only")  # fmt: skip
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    result = run_stack(RUN_DIR, lambda sink, stack: run(args, sink, stack))
    if result is None:
        return 130  # interrupted
    print_table(result)
    write_result(result, "fanout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
