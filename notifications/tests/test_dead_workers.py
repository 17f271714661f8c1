"""A worker process that dies hands back what it was sending within seconds: each process keeps
a key alive in Redis (core/liveness.py), and the sweeper gives the messages of a process
whose key is gone to the others. Real processes, real Redis, killed with SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from alarms import lifecycle
from alarms.timeline import SYSTEM
from conftest import REAL_REDIS, ROOT, wait_until
from core import liveness
from notifications.delivery import recovery, sending
from notifications.models import Delivery

pytestmark = pytest.mark.django_db

REPORTER = (
    "import django, sys, time; django.setup();"
    "from core import liveness; liveness.keep_reporting();"
    "print(liveness.process_name(), flush=True); time.sleep(600)"
)


@pytest.fixture
def worker_process():
    """start() -> (name, process): a process that reports itself alive as a pool process
    does; all are killed at the end."""
    started = []

    def start():
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="alarmsite.settings",
                   REDIS_URL=settings.REDIS_URL)  # fmt: skip
        process = subprocess.Popen([sys.executable, "-c", REPORTER], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, text=True)  # fmt: skip
        name = process.stdout.readline().strip()
        started.append((name, process))
        wait_until(lambda: REAL_REDIS.exists(f"alarmbroker:alive:{name}"), timeout=10)
        return name, process

    yield start
    for name, process in started:
        process.kill()
        process.wait()
        REAL_REDIS.srem(liveness.REGISTRY, name)
        REAL_REDIS.delete(f"alarmbroker:alive:{name}", f"alarmbroker:missing:{name}")


@pytest.fixture
def step_message(make_person):
    """step_message() -> the pending email of an alarm's first step, to a person of its own
    (written here, not by a step, so that no task of its own is queued for a worker)."""
    count = 0

    def make() -> Delivery:
        nonlocal count
        count += 1
        person = make_person(f"Person {count}", email=f"p{count}@example.org")
        alarm = lifecycle.raise_alarm(
            source="api", dedup_key=f"k{count}", title="Boiler", actor=SYSTEM
        ).alarm
        return Delivery.objects.create(
            alarm=alarm, step=0, round=0, person=person, target=f"person:{person.pk}",
            method="email", address=person.email, next_attempt_at=timezone.now(),
        )  # fmt: skip

    return make


@pytest.fixture
def taken_by(step_message):
    """taken_by(process name) -> a delivery that process has taken and is sending, its lease
    a minute away."""

    def make(name: str) -> Delivery:
        row = step_message()
        lease = timezone.now() + timedelta(minutes=1)
        Delivery.objects.filter(pk=row.pk).update(
            status="sending", attempts=1, next_attempt_at=lease, claimed_by=name
        )
        return row

    return make


def status(row: Delivery) -> str:
    return Delivery.objects.get(pk=row.pk).status


@pytest.mark.django_db(transaction=True)
def test_what_a_killed_worker_process_was_sending_goes_again_within_seconds_of_its_death(
    worker_process, taken_by, smtp_server, celery_worker
):
    (doomed, process), (living, _) = worker_process(), worker_process()
    orphan, kept = taken_by(doomed), taken_by(living)

    os.kill(process.pid, signal.SIGKILL)
    killed = time.monotonic()

    def sent_again():
        recovery.hand_back_from_dead()
        return status(orphan) == "sent"

    wait_until(sent_again, timeout=15, interval=0.5)
    took = time.monotonic() - killed
    assert took < liveness.ALIVE_SECONDS + liveness.CONFIRM_SECONDS + 2
    assert Delivery.objects.get(pk=orphan.pk).attempts == 2  # the first may have gone too
    lost, sent = orphan.tries.order_by("number")
    assert (lost.number, lost.outcome, sent.outcome) == (1, "lost", "sent")
    assert doomed in lost.answer
    assert [m.rcpt_tos for m in smtp_server.messages] == [[orphan.address]]
    assert status(kept) == "sending", "a living process keeps what it is sending"


def test_a_lost_liveness_key_alone_never_hands_back_what_a_living_process_sends(
    worker_process, taken_by
):  # as after Redis came back empty: every living process writes its key again at once
    name, _ = worker_process()
    row = taken_by(name)
    REAL_REDIS.delete(f"alarmbroker:alive:{name}")

    for _ in range(int(liveness.CONFIRM_SECONDS / 0.5) + 3):
        assert recovery.hand_back_from_dead() == 0
        time.sleep(0.5)

    assert status(row) == "sending"


def test_a_message_taken_outside_a_worker_process_waits_out_its_lease(taken_by):
    row = taken_by(liveness.process_name())  # this process reports nothing: ''

    assert recovery.hand_back_from_dead() == 0
    assert status(row) == "sending"


def sent_and_sender_died(row: Delivery) -> None:
    """Take the message and have the provider take it; its sender dies before it records
    that, and its lease runs out."""
    sending.call(sending.claim(row.pk))
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())


def test_a_message_the_provider_took_before_its_sender_died_is_recorded_not_sent_again(
    step_message, smtp_server
):
    row = step_message()
    sent_and_sender_died(row)

    assert sending.attempt(row.pk) is None  # taken again: nothing to send

    row = Delivery.objects.get(pk=row.pk)
    assert (row.status, row.attempts, row.provider_status) == ("sent", 1, "SMTP 250")
    assert row.sent_at is not None and row.provider_message_id
    assert len(smtp_server.messages) == 1
    assert row.alarm.events.filter(kind="delivery_sent").count() == 1


def test_without_the_mark_a_message_whose_sender_died_goes_again(step_message, smtp_server):
    row = step_message()
    sent_and_sender_died(row)
    REAL_REDIS.delete(f"alarmbroker:sent:{row.pk}")  # as with Redis away: at least once

    assert sending.attempt(row.pk) == "sent"

    assert Delivery.objects.get(pk=row.pk).attempts == 2
    assert len(smtp_server.messages) == 2
