"""`make run` for real, at a terminal: on a fresh VAR_DIR (its own SQLite and private
Redis) prints its banner once web, worker and beat answer, without Celery's banners, again on
Enter, and a Ctrl-C stops everything with exit status 0."""

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis
import requests
from django.db import connection

from conftest import ROOT, free_port
from observability import health

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the runner makes its own SQLite database whatever the run's: the SQLite pass runs it",
)
BANNER, BANNER_END = "The alarm broker is up.", "Enter shows this again"


class Output:
    """Every line the runner prints, read as it comes."""

    def __init__(self, stream):
        self.lines = []
        self._new = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_for(self, text: str, count: int = 1, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while sum(text in line for line in self.lines) < count:
            try:
                line = self._new.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                pytest.fail(f"{text!r} not printed {count}x; the runner printed:\n{self.text()}")
            self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def var_dir():
    # Short: the private Redis listens on a Unix socket in it (at most 107 bytes of path).
    path = Path(tempfile.mkdtemp(prefix="run-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runner(var_dir):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(VAR_DIR=str(var_dir), PORT=str(port), PYTHONUNBUFFERED="1")
    env.update(MAIL_IN_PORT=str(free_port()), SIA_PORT=str(free_port()))  # ports of their own
    # `make run` at a terminal, as a person starts it: `script` gives it one (a pty), and what
    # is written to its input is typed there (Enter, Ctrl-C).
    process = subprocess.Popen(
        ["script", "--quiet", "--return", "--command", "make run", "/dev/null"],
        cwd=ROOT, env=env, text=True, start_new_session=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    process.output = Output(process.stdout)
    process.url = f"http://127.0.0.1:{port}"
    yield process
    for pid in _in_session(process.pid):  # the runner takes a process group of its own
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(10)


def _in_session(session: int) -> list[int]:
    """The processes of this session (what `script` started, in whatever process group)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == session:
            found.append(int(stat.parent.name))
    return found


def test_the_banner_comes_once_everything_answers_enter_repeats_it_and_ctrl_c_exits_0(
    runner, var_dir
):
    runner.output.wait_for(BANNER_END, timeout=240)

    # Everything the banner promises answers by the time it is printed.
    assert requests.get(runner.url + "/healthz", timeout=5).status_code == 200
    reports = redis.Redis(unix_socket_path=str(var_dir / "redis.sock"))
    assert all(reports.get(health.last_seen_key(part)) for part in ("worker", "beat"))
    printed = runner.output.text()
    assert "celery@" not in printed and "celery beat v" not in printed, "no Celery banners"
    assert "superuser privileges" not in printed
    assert printed.index("web started") < printed.index(BANNER)
    assert "curl 'http://127.0.0.1:" in printed.split(BANNER)[-1], "the trigger, in the banner"

    runner.stdin.write("\r")  # Enter
    runner.stdin.flush()
    runner.output.wait_for(BANNER_END, count=2, timeout=10)
    assert runner.output.text().count(BANNER) == 2

    runner.stdin.write("\x03")  # Ctrl-C
    runner.stdin.flush()

    assert runner.wait(60) == 0, runner.output.text()
    runner.output.wait_for("private Redis stopped", timeout=5)
    assert "make: ***" not in runner.output.text(), "make saw a clean stop"
