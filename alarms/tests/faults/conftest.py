"""Fixtures of the fault suite: the sinks, the stack (on the root conftest's private Redis), a
scenario's people and policy, and the PASS/FAIL line each scenario prints (again in a section
at the end of the run, whatever pytest captured)."""

import shutil
import time

import pytest

from alarms.tests.test_board_browser import browser  # noqa: F401 (the board in chromium)
from devices.models import Device
from notifications.models import NotificationChannel

from .checks import Tally
from .cluster import Cluster
from .replicas import SentinelRedis
from .sinks import MailSink, WebhookSink
from .stack import Stack

LINES = pytest.StashKey[list[str]]()


@pytest.fixture
def mail_sink():
    sink = MailSink()
    yield sink
    sink.close()


@pytest.fixture
def hook_sink():
    sink = WebhookSink()
    yield sink
    sink.close()


@pytest.fixture
def stack(request, transactional_db, tmp_path, mail_sink):
    """The scenario starts its processes; whatever still runs is stopped at the end. On the
    Sentinels' master when the scenario asks for `sentinel_redis` (its processes then know
    only the Sentinels), else on a Redis server of its own."""
    wanted = "sentinel_redis" if "sentinel_redis" in request.fixturenames else "private_redis"
    made = Stack(tmp_path, request.getfixturevalue(wanted), mail_sink.port)
    yield made
    made.stop()


@pytest.fixture
def sentinel_redis(tmp_path):
    """A Redis master, its replica and three Sentinels."""
    group = SentinelRedis(tmp_path).start()
    yield group
    group.stop()


@pytest.fixture
def cluster(transactional_db, tmp_path, private_redis, mail_sink):
    """Two nodes behind HAProxy; started by the scenario, stopped at the end."""
    if shutil.which("haproxy") is None:
        pytest.skip("needs HAProxy (Debian's haproxy) in front of the nodes")
    made = Cluster(tmp_path, private_redis, mail_sink.port)
    yield made
    made.stop()


@pytest.fixture
def escalation(make_person, make_policy, make_device):
    """escalation([(delay, people, [webhook urls]), …]) -> a device token whose alarms follow
    that policy; each step notifies people of its own by email, and the webhooks."""

    def make(steps, **policy_fields):
        planned = []
        for order, (delay, people, urls) in enumerate(steps):
            persons = [
                make_person(f"Step{order}-{n}", email=f"step{order}-{n}@example.org")
                for n in range(people)
            ]
            channels = [
                NotificationChannel.objects.get_or_create(
                    name=url.rsplit("/", 1)[-1], kind="webhook", config={"url": url}
                )[0]
                for url in urls
            ]
            planned.append((delay, persons, channels))
        policy = make_policy(planned, name="Fault scenario", **policy_fields)
        _, token = make_device(
            "Fault scenario device", kind=Device.Kind.GENERIC, default_policy=policy,
            rate_limit_per_minute=1_000_000,
        )  # fmt: skip
        return token

    return make


@pytest.fixture
def report(request):
    """report(scenario, tally): print the scenario's line, timed from the test's start; fail on
    any problem (a process of the stack, or of the cluster, that ended by itself is one)."""
    stack = request.getfixturevalue("cluster" if "cluster" in request.fixturenames else "stack")
    started = time.monotonic()  # after the stack and the sinks: the scenario starts now

    def write(scenario: str, tally: Tally) -> None:
        exited = stack.exited()
        tally.counts["processes exited"] = len(exited)
        if exited:
            tally.problems.append(f"exited during the scenario: {', '.join(exited)}")
        line = tally.line(scenario, time.monotonic() - started)
        request.config.stash.setdefault(LINES, []).append(line)
        plugins = request.config.pluginmanager
        reporter, capture = (
            plugins.getplugin("terminalreporter"),
            plugins.getplugin("capturemanager"),
        )
        if reporter is not None and capture is not None and request.config.option.verbose > 0:
            with capture.global_and_fixture_disabled():  # to the terminal as it happens
                reporter.ensure_newline()
                reporter.write_line(line)
        if tally.problems:
            tally.problems += [f"logged {error}" for error in stack.errors()]
            pytest.fail(line + "\n  " + "\n  ".join(tally.problems), pytrace=False)

    return write


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(LINES, [])
    if lines:
        terminalreporter.section("fault scenarios")
        for line in lines:
            terminalreporter.write_line(line)
