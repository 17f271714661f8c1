"""What the benchmarks share: their own database and stack (daphne, Celery worker, beat) on this
machine, the HTTP sink standing in for a provider, and the meters (CPU, PostgreSQL backends).

Nothing here sets Django up: a script calls `configure` first, then imports the project's code.
"""

import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import django
import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Every alarm notifies on its own: the figures are per alarm, at rates the storm guard would
# otherwise fold into digests.
STORM_GUARD_OFF = {"STORM_SOURCE_THRESHOLD": "0", "STORM_GLOBAL_THRESHOLD": "0"}

sys.path.insert(0, str(ROOT))


def configure(run_name: str, database_url: str, redis_url: str) -> tuple[str, str, Path]:
    """The run's database and Redis (BENCH_DATABASE_URL and BENCH_REDIS_URL, else these) and a
    fresh directory for its logs. This process and the stack it starts share one configuration;
    set it, then set Django up. VAR_DIR keeps the run's secret key and files out of the
    project's var/."""
    database_url = os.environ.get("BENCH_DATABASE_URL", database_url)
    redis_url = os.environ.get("BENCH_REDIS_URL", redis_url)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{run_name}-"))
    os.environ.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        VAR_DIR=str(run_dir),
        DJANGO_SETTINGS_MODULE="alarmsite.settings",
        **STORM_GUARD_OFF,
    )
    django.setup()
    # The stack's processes log as in production; this one's own lines would bury the table.
    logging.disable(logging.INFO)
    return database_url, redis_url, run_dir


# ---------------------------------------------------------------------------------------------
# The provider stand-in


def posted_events(body: bytes) -> list[tuple[str, str]]:
    """(alarm id, event key) of each notification in one post: our webhook carries one event
    (its event_id is the same on every retry); Alertmanager's carries a group of alerts."""
    try:
        data = json.loads(body)
        if "alerts" in data:
            found = []
            for alert in data["alerts"]:
                alert_id = alert["labels"].get("bench_id", "")
                found.append((alert_id, f"{alert_id}:{alert['status']}"))
            return found
        alarm_id = data["alarm"]["id"]
        return [(alarm_id, data.get("event_id") or alarm_id)]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when a sender posts many at once: the
    # sender's retry would then count as the sink's delay.
    request_queue_size = 1024


class Sink:
    """Records when each alarm's first post arrived and when each event was first posted
    (this process's clock, which the load drivers share), and counts repeated events."""

    def __init__(self):
        self.lock = threading.Lock()
        self.first: dict[str, float] = {}  # alarm (or alert) id -> its first post
        self.events: dict[str, float] = {}  # event key -> its first post
        self.counts: dict[str, int] = {}  # event key -> posts carrying it
        self.repeats = 0  # posts of an event posted before: a duplicated notification
        self.server = SinkServer(("127.0.0.1", 0), SinkHandler)
        self.server.sink = self
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, events: list[tuple[str, str]], arrived: float) -> None:
        with self.lock:
            for alarm_id, key in events:
                if key in self.counts:
                    self.repeats += 1
                    self.counts[key] += 1
                    continue
                self.counts[key] = 1
                self.events[key] = arrived
                self.first.setdefault(alarm_id, arrived)

    def wait_for(self, alarm_ids, timeout: float) -> bool:
        """Until every one of these alarms has had a post (True), or the timeout (False)."""
        return self._wait(set(alarm_ids), self.first, timeout)

    def wait_for_events(self, keys, timeout: float) -> bool:
        return self._wait(set(keys), self.events, timeout)

    def _wait(self, wanted: set, seen: dict, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if wanted <= seen.keys():
                    return True
            time.sleep(0.05)
        return False

    def duplicated(self, alarm_ids) -> int:
        """Events of these alarms posted more than once (each extra post counted)."""
        wanted = set(alarm_ids)
        with self.lock:
            return sum(
                count - 1 for key, count in self.counts.items() if key.split(":")[0] in wanted
            )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SinkHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        arrived = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.sink.record(posted_events(body), arrived)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b'{"ok":true}')

    def log_message(self, *args):
        pass


# ---------------------------------------------------------------------------------------------
# Database, environment, processes


def create_database(database_url: str, fresh: bool = False) -> None:
    """The benchmark's own database on this machine's PostgreSQL; `fresh` drops it first
    (only a database whose name says it is a benchmark's)."""
    name = urlsplit(database_url).path.lstrip("/")
    if fresh and "bench" not in name:
        raise SystemExit(
            f"refusing to drop {name!r}: a benchmark's database has 'bench' in its name"
        )
    admin_url = urlsplit(database_url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def migrate(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, check=True, timeout=600,
    )  # fmt: skip


def postgres_setting(database_url: str, name: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0]


def child_env(*extras: dict[str, str], public_url: str = "") -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for extra in extras:
        env.update(extra)
    if public_url:
        env["PUBLIC_BASE_URL"] = public_url
    return env


def env_pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"expected NAME=VALUE, got {item!r}")
        pairs[name] = value
    return pairs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """The processes a benchmark started, each in its own process group, logging to the run's
    directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict) -> None:
        log = open(self.run_dir / f"{name}.log", "wb")
        self.processes[name] = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start_python(self, name: str, args: list[str], env: dict) -> None:
        self.start(name, [sys.executable, "-m", *args], env)

    def check(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.run_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"{name} exited ({process.returncode}):\n{tail}")

    def stop(self, *names: str) -> None:
        """Stop these processes (all when none is named) and their process groups."""
        stopping = [self.processes.pop(name) for name in names or list(self.processes)]
        for process in stopping:
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in stopping:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(process, signal.SIGKILL)
                process.wait(5)
        # A prefork child may outlive its parent for a moment; its group goes with it.
        for process in stopping:
            signal_group(process, signal.SIGKILL)

    def pids(self, name: str) -> list[int]:
        pid = self.processes[name].pid
        return [pid, *children(pid)]


def signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # its own session: the group id is its pid
    except (ProcessLookupError, PermissionError):
        pass


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def start_broker(
    stack: Stack, celery_app, worker: list[str], extra_env: dict[str, dict] | None = None
) -> str:
    """The production shape (docker-compose.yml) on a free port: the web process as `python -m
    alarmsite.serve` (daphne, access log through logging), a Celery worker with `worker`'s
    extra options, beat. `extra_env` adds to every process's environment ("all") or to one
    process's ("web", "worker", "beat"). Returns the web's base URL once the web process and
    the worker (pinged through `celery_app`) answer."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra_env = extra_env or {}
    envs = {
        name: child_env(extra_env.get("all", {}), extra_env.get(name, {}), public_url=base)
        for name in ("web", "worker", "beat")
    }
    stack.start_python(
        "web",
        ["alarmsite.serve", "-b", "127.0.0.1", "-p", str(port), "alarmsite.asgi:application"],
        envs["web"],
    )
    stack.start_python(
        "worker", ["celery", "-A", "alarmsite", "--quiet", "worker", "-l", "info", *worker],
        envs["worker"],
    )  # fmt: skip
    beat = ["celery", "-A", "alarmsite", "--quiet", "beat", "-l", "info",
            "-s", str(stack.run_dir / "beat")]  # fmt: skip
    stack.start_python("beat", beat, envs["beat"])
    wait_until_up(stack, base, lambda: bool(celery_app.control.ping(timeout=1.0)))
    return base


def wait_until_up(
    stack: Stack, base: str, worker_answers: Callable[[], bool], timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    web_up = worker_up = False
    while not (web_up and worker_up):
        stack.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"not up after {timeout:.0f}s: web {web_up}, worker {worker_up}")
        if not web_up:
            try:
                requests.get(f"{base}/healthz", timeout=1)
                web_up = True
            except requests.RequestException:
                pass
        if not worker_up:
            worker_up = worker_answers()
        time.sleep(0.2)


def wait_answering(stack: Stack, url: str, what: str, timeout: float = 30) -> None:
    """Until `url` answers 200 (a process of the stack that exits meanwhile stops the run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check()
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within {timeout:.0f} s")


def wait_idle(redis_url: str, timeout: float) -> bool:
    """Until no task is queued or running (kombu's Redis keys), or the timeout (False)."""
    broker = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not broker.llen("celery") and not broker.hlen("unacked"):
            return True
        time.sleep(0.5)
    return False


def run_stack(run_dir: Path, work: Callable[[Sink, Stack], dict]) -> dict | None:
    """work(sink, stack) with a sink and a stack of the run's own; every process it started is
    stopped at the end, also on Ctrl-C or SIGTERM (None then)."""
    # A SIGTERM unwinds like Ctrl-C, so the stack is stopped either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sink, stack = Sink(), Stack(run_dir)
    try:
        return work(sink, stack)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return None
    finally:
        stack.stop()
        sink.close()
        print(f"logs: {run_dir}", file=sys.stderr)


def write_result(result: dict, name: str) -> None:
    """bench/results/<name>-<timestamp>.json"""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")


# ---------------------------------------------------------------------------------------------
# CPU accounting from /proc: who spent the machine's two cores


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def idle_busy(seconds: float = 3.0) -> float:
    """How busy the machine is (percent of all cores) while the stack is idle: others' work."""
    before = machine_ticks()
    time.sleep(seconds)
    after = machine_ticks()
    return round(100 * (after[0] - before[0]) / max(1, after[1] - before[1]), 1)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class PostgresWatcher:
    """Polls the bench database's backends on a connection of its own: how many there are at
    once (above `cap` it sets `over`: the server's connections are shared with everyone's
    tests) and each one's CPU time, kept after it exits (a backend lives only as long as its
    client's connection)."""

    def __init__(self, database_url: str, cap: int, interval: float = 0.2):
        self.database_url = database_url
        self.cap, self.interval, self.peak = cap, interval, 0
        self.cpu: dict[int, float] = {}
        self.lock = threading.Lock()
        self.stopped, self.over = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        sql = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self.stopped.wait(self.interval):
                pids = [row[0] for row in conn.execute(sql).fetchall()]
                seen = {pid: cpu_seconds(pid) for pid in pids}
                with self.lock:
                    self.cpu.update({pid: t for pid, t in seen.items() if t})
                    self.peak = max(self.peak, len(pids))
                if self.peak > self.cap:
                    self.over.set()

    def reset_peak(self) -> None:
        with self.lock:
            self.peak = 0

    def cpu_snapshot(self) -> dict[int, float]:
        with self.lock:
            return dict(self.cpu)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(5)


def redis_pid(redis_url: str) -> int | None:
    try:
        return int(redis.Redis.from_url(redis_url).info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError):
        return None


class CpuMeter:
    """CPU seconds of each part between two samples; the rest of the machine is everyone
    else's work (other tests on this machine) plus backends too short-lived to be polled."""

    def __init__(self, stack: Stack, postgres: PostgresWatcher, redis_url: str):
        self.stack, self.postgres, self.redis_url = stack, postgres, redis_url

    def sample(self) -> dict:
        pids = {name: self.stack.pids(name) for name in self.stack.processes}
        pids["redis"] = [pid] if (pid := redis_pid(self.redis_url)) else []
        pids["bench"] = [os.getpid()]
        groups = {name: {pid: cpu_seconds(pid) for pid in found} for name, found in pids.items()}
        groups["postgres"] = self.postgres.cpu_snapshot()
        return {"groups": groups, "machine": machine_ticks(), "at": time.monotonic()}

    @staticmethod
    def spent(before: dict, after: dict, extra: dict[str, float] | None = None) -> dict:
        """CPU seconds per group between two samples (plus `extra`: parts that measured
        themselves, such as load drivers that exited), and how busy the whole machine was."""
        spent = {}
        for name, pids in after["groups"].items():
            earlier = before["groups"].get(name, {})
            spent[name] = round(sum(t - earlier.get(pid, 0.0) for pid, t in pids.items()), 3)
        spent.update({name: round(seconds, 3) for name, seconds in (extra or {}).items()})
        busy = after["machine"][0] - before["machine"][0]
        total = after["machine"][1] - before["machine"][1]
        spent["rest of machine"] = round(busy / CLOCK_TICKS - sum(spent.values()), 3)
        return {
            "cpu_seconds": spent,
            "machine_busy_percent": round(100 * busy / total, 1) if total else 0.0,
            "seconds": round(after["at"] - before["at"], 2),
        }


def machine_line(cpu: dict) -> str:
    rest = cpu["cpu_seconds"]["rest of machine"]
    share = 100 * rest / (cpu["seconds"] * (os.cpu_count() or 1)) if cpu["seconds"] else 0
    return (
        f"  machine busy {cpu['machine_busy_percent']}% over {cpu['seconds']}s, of which "
        f"{share:.0f}% not this stack (other users' tests; the kernel)"
    )


# ---------------------------------------------------------------------------------------------
# Figures


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def at(p):
        return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 1)

    return {"n": len(ordered), "p50": at(50), "p95": at(95), "p99": at(99),
            "max": round(ordered[-1], 1), "mean": round(statistics.fmean(ordered), 1)}  # fmt: skip
