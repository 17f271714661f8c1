"""The production shape for fault scenarios: a daphne web process, Celery workers and beat,
each a process of its own (as `alarmsite.runner` and compose start them) on a Redis server of
the scenario's own, so a scenario can kill, stop and restart any of them."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from celery import Celery

from conftest import ROOT, PrivateRedis, test_database_url

from .local import free_port


class Process:
    """One process of the stack, in a process group of its own, so a signal reaches a prefork
    worker's pool processes too."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path, ready: str):
        self.name = name
        self.meant_to_end = False  # stopped or killed by the scenario, not by a fault of its own
        self.log_path = log_dir / f"{name}.log"
        self.ready_line = ready
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed when the process ends)
        self.popen = subprocess.Popen(
            [sys.executable, *args], env=env, cwd=ROOT, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def is_ready(self) -> bool:
        return self.ready_line in self.log()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def task_results(self, task: str) -> list[str]:
        """What each run of this task returned, from the worker's log."""
        pattern = re.compile(rf"Task {re.escape(task)}\[[^\]]+\] succeeded in [\d.e-]+s: (\S+)")
        return pattern.findall(self.log())

    def pids(self) -> set[str]:
        """The pids of its process group (a prefork worker's pool processes too)."""
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                group = int(stat.read_text().rsplit(")", 1)[1].split()[2])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            if group == self.popen.pid:
                found.add(stat.parent.name)
        return found

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the whole group, as the kernel's OOM killer or a lost machine would."""
        self.meant_to_end = True
        self.signal(signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def stop(self) -> None:
        """SIGTERM, as an operator's stop does; wait for it to exit."""
        self.meant_to_end = True
        self.signal(signal.SIGTERM)
        self.finish(timeout=15)

    def finish(self, timeout: float) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(10)
        self._log.close()


class Stack:
    """Web, workers and beat sharing the test database, one Redis and the sinks' addresses."""

    def __init__(self, run_dir: Path, redis_server: PrivateRedis, mail_port: int, **settings):
        self.dir = run_dir
        self.redis = redis_server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            DATABASE_URL=test_database_url(),
            **redis_server.env,
            VAR_DIR=str(run_dir),
            SECRET_KEY="fault-scenario-" + "k" * 40,  # one key for all, none written twice
            PUBLIC_BASE_URL=self.url,
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(mail_port),
            LOG_FORMAT="plain",
            PYTHONUNBUFFERED="1",
            # Scenarios raise alarms faster than the storm guard lets through one by one.
            STORM_SOURCE_THRESHOLD="0",
            STORM_GLOBAL_THRESHOLD="0",
            ESCALATION_SWEEP_INTERVAL="1",
            DELIVERY_RETRY_BASE_SECONDS="0.5",
            DELIVERY_TIMEOUT_SECONDS="2",
            ACK_RATE_PER_MINUTE="10000",
        )
        self.configure(**settings)
        self.processes: list[Process] = []
        self._client = None

    def configure(self, **settings) -> None:
        """Environment for the processes started from now on."""
        self.env.update({key: str(value) for key, value in settings.items()})

    def _start(self, name: str, args: list[str], ready: str) -> Process:
        process = Process(name, args, self.env, self.dir, ready)
        self.processes.append(process)
        return process

    def web(self) -> Process:
        args = ["-m", "alarmsite.serve", "-b", "127.0.0.1", "-p", str(self.port),
                "alarmsite.asgi:application"]  # fmt: skip
        return self._start("web", args, ready="Listening on TCP address")

    def worker(self, name: str = "worker", concurrency: int = 2) -> Process:
        # Prefork, as in production; mingle and gossip only slow the start of a lone worker.
        args = ["-m", "celery", "-A", "alarmsite", "worker", "-l", "info", "-n", f"{name}@%h",
                "--concurrency", str(concurrency), "--without-mingle",
                "--without-gossip"]  # fmt: skip
        return self._start(name, args, ready=" ready.")

    def beat(self, name: str = "beat") -> Process:
        args = ["-m", "celery", "-A", "alarmsite", "beat", "-l", "info",
                "--pidfile", str(self.dir / f"{name}.pid")]  # fmt: skip
        return self._start(name, args, ready="beat: Starting")

    def start(self) -> None:
        """Web, a worker and beat; returns once web and worker are ready."""
        web, worker = self.web(), self.worker()
        self.beat()
        self.wait_ready(web, worker)

    def wait_ready(self, *processes: Process, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for process in processes:
            while not process.is_ready():
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited:\n{process.log()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{process.name} not ready:\n{process.log()[-3000:]}")
                time.sleep(0.05)

    def keep_redis_data(self) -> None:
        """From now on a stop of the stack's Redis saves a snapshot (SIGTERM: it saves first),
        which its next start loads, as a Redis with its default snapshots does; otherwise it
        comes back empty."""
        client = redis.Redis.from_url(self.redis.url)
        client.config_set("save", "3600 1")
        client.close()

    def send_task(self, name: str, *args, eta=None) -> None:
        """Publish a task straight to the stack's broker (a duplicate of one it sent)."""
        if self._client is None:
            self._client = Celery("fault-scenario", broker=self.redis.url)
        self._client.send_task(name, args=args, eta=eta)

    def errors(self, most: int = 5) -> list[str]:
        """The last errors the processes logged, to tell why a scenario failed."""
        found = [f"{p.name}: {line[:300]}" for p in self.processes
                 for line in p.log().splitlines() if " ERROR " in line]  # fmt: skip
        return found[-most:]

    def exited(self) -> list[str]:
        """Processes that ended although the scenario did not stop them."""
        return [p.name for p in self.processes if not p.meant_to_end and not p.alive()]

    def stop(self) -> None:
        """At the end of a scenario: SIGKILL to everything at once (what they did is counted
        by now; a warm shutdown would only add seconds)."""
        if self._client is not None:
            self._client.close()
        running = [p for p in self.processes if p.alive()]
        for process in running:
            process.signal(signal.SIGKILL)
        for process in running:
            process.finish(timeout=10)
