"""An outbox channel that cannot reach its provider (here an upstream broker on a port where
nothing listens): its backlog on /readyz, /metrics and the board's snapshot, an alarm of its
own once it has failed too long, resolved when its messages went."""

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alarms import lifecycle, outbox_watch
from alarms.board import snapshot
from alarms.models import Alarm
from alarms.timeline import SYSTEM
from conftest import REAL_REDIS, free_port
from devices.models import Device
from notifications.models import NotificationChannel
from notifications.tests.steps import run_step, send
from observability import health

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _nothing_seen_yet():
    REAL_REDIS.delete(health.OUTBOX_KEY)
    yield
    REAL_REDIS.delete(health.OUTBOX_KEY)


@pytest.fixture
def registry(make_device):
    """An upstream channel pointing where nothing answers."""
    _, token = make_device("Uplink", kind=Device.Kind.GENERIC, room=None)
    return NotificationChannel.objects.create(
        kind="upstream", name="Central registry",
        config={"url": f"http://127.0.0.1:{free_port()}", "token": token},
    )  # fmt: skip


@pytest.fixture
def forwarded(registry, make_policy):
    """forwarded(n) -> n alarms whose step tried to forward them and failed."""
    policy = make_policy([(0, [], [registry])], is_default=True)

    def make(count: int) -> list[Alarm]:
        alarms = []
        for n in range(count):
            alarm = lifecycle.raise_alarm(
                source="api", dedup_key=f"site-{n}", title=f"Smoke {n}", actor=SYSTEM,
                policy=policy,
            ).alarm  # fmt: skip
            [row] = run_step(alarm)
            assert send(row).status == "pending"
            alarms.append(alarm)
        return alarms

    return make


def metric(client, name: str, **labels) -> float | None:
    page = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def test_a_failing_channels_backlog_is_on_readyz_metrics_and_the_board(client, forwarded):
    forwarded(3)

    [backlog] = outbox_watch.watch()

    assert (backlog.channel, backlog.kind, backlog.waiting) == ("Central registry", "upstream", 3)
    assert backlog.failing_since is not None
    assert backlog.last_error.startswith("connection failed")
    [shown] = client.get("/readyz").json()["checks"]["outbox"]["channels"]
    assert (shown["channel"], shown["waiting"]) == ("Central registry", 3)
    labels = {"channel": "Central registry", "kind": "upstream"}
    assert metric(client, "alarmbroker_outbox_waiting", **labels) == 3
    assert metric(client, "alarmbroker_outbox_failing_seconds", **labels) > 0
    assert snapshot.Snapshot().outbox == [backlog.as_dict()]


def test_a_channel_failing_too_long_raises_an_alarm_resolved_once_its_messages_went(
    forwarded, registry, settings, live_server
):
    settings.OUTBOX_ALARM_AFTER_SECONDS = 0
    [waiting] = forwarded(1)

    outbox_watch.watch()
    outbox_watch.watch()  # looking again changes nothing

    alarm = Alarm.objects.get(source=outbox_watch.SOURCE)
    assert (alarm.status, alarm.title) == ("triggered", "Forwarding to Central registry is failing")
    assert "connection failed" in alarm.message
    assert alarm.events.filter(kind="updated").count() == 0
    registry.config["url"] = live_server.url
    registry.save()
    row = waiting.deliveries.get(channel=registry)
    row.next_attempt_at = timezone.now()
    row.save()
    assert send(row).status == "sent"

    assert outbox_watch.watch() == []

    alarm.refresh_from_db()
    assert alarm.status == "resolved"
    assert snapshot.Snapshot().outbox == []


def test_a_channel_with_messages_on_their_way_is_not_failing(registry, make_policy, settings):
    settings.OUTBOX_ALARM_AFTER_SECONDS = 0
    make_policy([(0, [], [registry])], is_default=True)
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="Smoke", actor=SYSTEM).alarm
    run_step(alarm)  # its message is due, not yet tried

    [backlog] = outbox_watch.watch()

    assert (backlog.waiting, backlog.failing_since) == (1, None)
    assert not Alarm.objects.filter(source=outbox_watch.SOURCE).exists()
