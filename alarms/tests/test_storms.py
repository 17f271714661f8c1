"""The storm guard: a flood of alarms from one source notifies each target once, in a digest,
while every alarm is stored, listed and acknowledgeable."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import Alarm
from alarms.timeline import SYSTEM
from conftest import REAL_REDIS
from devices.models import Device
from notifications.models import Delivery
from notifications.tests.steps import drain

pytestmark = pytest.mark.django_db

THRESHOLD = 20
# A storm big enough for several Alertmanager groups of 1,000 (make bench raises 10,000).
STORM = 2000


@pytest.fixture
def storm_guard(settings):
    for key in REAL_REDIS.scan_iter("storm:*"):  # counts of earlier tests and runs
        REAL_REDIS.delete(key)
    settings.STORM_SOURCE_THRESHOLD, settings.STORM_GLOBAL_THRESHOLD = THRESHOLD, 0
    settings.STORM_WINDOW_SECONDS, settings.STORM_DIGEST_SECONDS = 60, 30


def alertmanager_batch(first: int, count: int) -> dict:
    return {
        "version": "4", "status": "firing", "receiver": "alarm-broker",
        "alerts": [
            {"status": "firing", "fingerprint": f"{n:016x}",
             "labels": {"alertname": "NodeDown", "instance": f"node-{n}:9100",
                        "severity": "critical"},
             "annotations": {"summary": f"Node {n} is down"}}
            for n in range(first, first + count)
        ],
    }  # fmt: skip


def test_a_storm_of_alarms_makes_one_digest_per_target_and_loses_nothing(
    client, storm_guard, make_device, make_person, make_policy, webhook_channel, make_user,
    webhook_receiver, smtp_server,
):  # fmt: skip
    alice = make_person("Alice")
    policy = make_policy([(0, [alice], [webhook_channel])], name="Operations")
    _, token = make_device("Alertmanager", kind=Device.Kind.ALERTMANAGER, room=None,
                           default_policy=policy, rate_limit_per_minute=100)  # fmt: skip

    for first in range(0, STORM, 1000):
        response = client.post(
            "/v1/integrations/alertmanager", alertmanager_batch(first, 1000),
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}",
        )  # fmt: skip
        assert response.status_code == 200
        assert {r["action"] for r in response.json()["alerts"]} == {"raised"}

    # Every alarm is stored and listed, open and acknowledgeable.
    alarms = Alarm.objects.filter(source="alertmanager")
    assert alarms.count() == STORM and alarms.filter(status="triggered").count() == STORM
    client.force_login(make_user("viewer", role="Viewers"))
    listed = client.get("/v1/alarms/", {"source": "alertmanager", "limit": 1}).json()
    assert listed["count"] == STORM
    # The first ones notify on their own; the rest are folded into one storm alarm.
    assert alarms.filter(policy=policy).count() == THRESHOLD
    folded = alarms.filter(silenced_by__startswith="the storm guard (source alertmanager)")
    assert folded.count() == STORM - THRESHOLD
    storm = Alarm.objects.get(source="storm")
    assert set(folded.values_list("folded_into", flat=True)) == {storm.pk}, "the board folds them"
    assert not alarms.filter(policy=policy).exclude(folded_into=None).exists()
    assert storm.occurrences == STORM - THRESHOLD
    assert storm.title == f"Alarm storm: {STORM - THRESHOLD} alarms from source alertmanager"
    assert "First: Node 20 is down" in storm.message
    assert storm.policy == policy

    # Time passes: every due step runs and every message goes out (no worker runs the steps'
    # tasks here: the sweeper takes each once its task's lease is over).
    Alarm.objects.filter(pk=storm.pk).update(next_escalation_at=timezone.now())
    Alarm.objects.update(step_queued_until=timezone.now())
    assert engine.sweep() == THRESHOLD + 1
    for alarm in Alarm.objects.exclude(policy=None):
        drain(alarm)

    per_target = THRESHOLD + 1  # one message per early alarm, one digest
    assert len(webhook_receiver.requests) == per_target
    assert len(smtp_server.messages) == per_target
    digests = [r["json"]["alarm"] for r in webhook_receiver.requests
               if r["json"]["alarm"]["id"] == str(storm.pk)]  # fmt: skip
    assert [d["title"] for d in digests] == [storm.title]
    assert sum(storm.title in body for body in smtp_server.bodies()) == 1
    assert Delivery.objects.count() == 2 * per_target

    lifecycle.acknowledge(folded.first().pk, SYSTEM)  # members stay acknowledgeable
    assert folded.filter(status="acknowledged").count() == 1


def test_below_the_threshold_every_alarm_notifies_on_its_own(storm_guard, make_policy, make_person):
    make_policy([(0, [make_person("Alice")], [])], is_default=True)

    for n in range(THRESHOLD):
        lifecycle.raise_alarm(source="api", dedup_key=f"k{n}", title=f"A{n}", actor=SYSTEM)

    assert not Alarm.objects.filter(source="storm").exists()
    assert Alarm.objects.exclude(policy=None).count() == THRESHOLD


def test_a_persons_press_is_never_folded_by_a_storm_it_pages_at_once(
    storm_guard, make_policy, make_person, make_device, settings
):
    settings.STORM_GLOBAL_THRESHOLD = THRESHOLD  # a storm of all sources together, too
    alice = make_person("Alice")
    make_policy([(0, [alice], [])], is_default=True)
    for n in range(THRESHOLD + 5):  # an API storm rages
        lifecycle.raise_alarm(source="api", dedup_key=f"k{n}", title=f"A{n}", actor=SYSTEM)
    phone, _ = make_device("Desk phone reception")
    button, _ = make_device("Panic button", kind=Device.Kind.GENERIC, person=alice, room=None)
    sensor, _ = make_device("Fridge sensor", kind=Device.Kind.GENERIC)

    pressed = [
        lifecycle.raise_alarm(source=source, dedup_key=f"{device.pk}", title="Help",
                              actor=SYSTEM, device=device).alarm
        for source, device in (("yealink", phone), ("api", button), ("api", sensor))
    ]  # fmt: skip

    key, panic, fridge = pressed
    for alarm in (key, panic):
        assert alarm.silenced_by == "" and alarm.policy is not None
        assert alarm.next_escalation_at <= timezone.now() + timedelta(seconds=1)
    assert fridge.silenced_by.startswith("the storm guard")


def test_the_window_passing_ends_the_storm(storm_guard, make_policy, make_person, settings):
    make_policy([(0, [make_person("Alice")], [])], is_default=True)
    for n in range(THRESHOLD + 5):
        lifecycle.raise_alarm(source="api", dedup_key=f"k{n}", title=f"A{n}", actor=SYSTEM)
    assert Alarm.objects.get(source="storm").occurrences == 5

    for key in REAL_REDIS.scan_iter("storm:*"):  # two windows later: the counts are gone
        REAL_REDIS.delete(key)
    late = lifecycle.raise_alarm(source="api", dedup_key="late", title="Late", actor=SYSTEM).alarm

    assert late.policy is not None and late.silenced_by == ""
    assert late.next_escalation_at <= timezone.now() + timedelta(seconds=1)


def test_without_redis_the_guard_holds_nothing_back(
    storm_guard, make_policy, make_person, settings
):
    make_policy([(0, [make_person("Alice")], [])], is_default=True)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    for n in range(THRESHOLD + 5):
        lifecycle.raise_alarm(source="api", dedup_key=f"k{n}", title=f"A{n}", actor=SYSTEM)

    assert Alarm.objects.exclude(policy=None).count() == THRESHOLD + 5
