"""The operators' go-live commands (firetestalarm, escalationtest, stormtest), run as an operator
runs them, against a real Celery worker, a real SMTP server and a real webhook receiver."""

import re
from datetime import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from alarms.models import OPEN_STATUSES, Alarm
from conftest import REAL_REDIS
from devices.models import Device
from escalation.models import EscalationPolicy, EscalationStep
from notifications.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def run_failing(*args) -> tuple[CommandError, str]:
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command(*args, stdout=out, stderr=StringIO())
    return failed.value, out.getvalue()


def clock(line: str) -> datetime:
    return datetime.strptime(line.split()[0], "%H:%M:%S.%f")


# --- firetestalarm ----------------------------------------------------------------------------


def test_a_desk_phone_test_alarm_follows_its_routing_to_an_email_and_is_resolved(
    celery_worker, smtp_server, make_person, make_policy, make_device
):
    alice = make_person("Alice")
    policy = make_policy([(0, [alice], [])], name="Front desk")
    device, _ = make_device("Desk phone 1", person=alice, default_policy=policy)

    out = run("firetestalarm", "--device", "Desk phone 1", "--timeout", "20")

    alarm = Alarm.objects.get(source="yealink")
    assert alarm.title == "[TEST] Emergency key pressed: Alice"
    assert alarm.labels["test"] == "true" and alarm.device == device
    assert alarm.status == "resolved" and alarm.events.get(kind="resolved").text == "test finished"
    (mail,) = smtp_server.messages
    assert mail.rcpt_tos == ["alice@example.org"]
    assert "[TEST] Emergency key pressed" in mail.content.decode()
    lines = out.splitlines()
    assert "Policy Front desk: default policy of device Desk phone 1" in out
    step = next(line for line in lines if "step_notified" in line)
    sent = next(
        line for line in lines if "to Alice by email <alice@example.org>: sent (SMTP 250" in line
    )
    assert lines.index(step) < lines.index(sent)
    assert "OK: delivered step 1 to Alice by email" in out
    device.refresh_from_db()
    assert device.last_seen_at is None, "a test must not count as hearing from the device"


@pytest.mark.parametrize("source", ["alertmanager", "pagerduty", "opsgenie", "generic"])
def test_a_test_alarm_from_each_source_reaches_the_webhook_of_its_policy(
    source, celery_worker, webhook_receiver, webhook_channel, make_policy, make_device
):
    make_policy([(0, [], [webhook_channel])], name="Everything", is_default=True)
    if source != "generic":
        make_device(f"{source} integration", kind=source, room=None)

    out = run("firetestalarm", "--source", source, "--timeout", "20")

    posted = webhook_receiver.requests[0]["json"]
    assert posted["event"] == "alarm.triggered"
    alarm = Alarm.objects.get(pk=posted["alarm"]["id"])
    assert alarm.title.startswith("[TEST] ") and posted["alarm"]["title"] == alarm.title
    assert alarm.source == ("api" if source == "generic" else source)
    assert alarm.status == "resolved"
    assert "OK: delivered step 1 to Ops webhook by webhook <http://127.0.0.1" in out


def test_a_test_alarm_that_no_policy_routes_fails_saying_there_is_no_route(make_device):
    make_device("Desk phone 1")

    failed, out = run_failing("firetestalarm", "--device", "Desk phone 1", "--timeout", "5")

    assert failed.returncode == 1
    assert str(failed).startswith("FAILED: no route: no routing rule")
    assert "No escalation policy" in out
    assert Alarm.objects.get().status == "resolved"


def test_a_test_alarm_whose_steps_reach_nobody_fails_saying_nobody_is_reachable(
    celery_worker, make_person, make_policy, make_device
):
    away = make_person("Away", active=False)
    no_address = make_person("Nomail", email="")
    policy = make_policy([(0, [away], []), (30, [no_address], [])], name="Night")
    make_device("Desk phone 1", default_policy=policy)

    failed, out = run_failing("firetestalarm", "--device", "Desk phone 1", "--timeout", "20")

    assert failed.returncode == 1
    assert str(failed).startswith("FAILED: nobody reachable: every step of policy Night")
    assert out.count("step_skipped") == 2 and "escalation_ended" in out


def test_a_test_alarm_whose_delivery_is_refused_fails_with_the_providers_answer(
    celery_worker, webhook_receiver, webhook_channel, make_policy, make_device
):
    webhook_receiver.statuses = [400]
    policy = make_policy([(0, [], [webhook_channel])])
    make_device("Button", kind=Device.Kind.GENERIC, default_policy=policy)

    failed, out = run_failing("firetestalarm", "--device", "Button", "--timeout", "20")

    assert failed.returncode == 1
    assert re.match(
        r"FAILED: delivery failed: step 1 to Ops webhook by webhook .*: failed", str(failed)
    )
    assert "400" in str(failed)
    assert Alarm.objects.get().title == "[TEST] Go-live test alarm from Button"


def test_without_a_worker_the_test_alarm_times_out_and_says_the_worker_is_missing(
    alice, make_policy, make_device
):
    make_device("Desk phone 1", person=alice, default_policy=make_policy([(0, [alice], [])]))

    failed, out = run_failing("firetestalarm", "--device", "Desk phone 1", "--timeout", "2")

    assert failed.returncode == 1
    assert "timed out after 2 s: the next step was due at" in str(failed)
    assert "is the Celery worker running?" in str(failed)
    assert Alarm.objects.get().status == "resolved" and not Delivery.objects.exists()


def test_an_unknown_device_is_refused_before_anything_is_raised(make_device):
    failed, _ = run_failing("firetestalarm", "--device", "Nope")

    assert "no device named 'Nope'" in str(failed)
    assert not Alarm.objects.exists()


# --- escalationtest ---------------------------------------------------------------------------


def test_an_escalation_test_runs_every_step_with_short_delays_and_leaves_the_policy_alone(
    celery_worker, smtp_server, webhook_receiver, webhook_channel, make_person, make_policy
):
    alice, bob = make_person("Alice"), make_person("Bob")
    make_policy([(0, [alice], []), (60, [bob], [webhook_channel])], name="Night shift")

    out = run("escalationtest", "Night shift", "--delay-scale", "0.02")

    assert "Step delays shortened for a test: 0, 1.2 s (the policy has 0, 60 s)" in out
    steps = [line for line in out.splitlines() if "step_notified" in line]
    assert "Step 1 of 2, round 1: notifying Alice by email" in steps[0]
    assert "Step 2 of 2, round 1: notifying Bob by email, Ops webhook by webhook" in steps[1]
    gap = (clock(steps[1]) - clock(steps[0])).total_seconds()
    assert 1.2 <= gap < 10
    assert (
        "step 2 to Ops webhook by webhook <http://127.0.0.1" in out and out.count(": sent (") == 3
    )
    assert "OK: every step ran; 2 step(s) notified, 0 reached nobody; 3 of 3" in out
    delays = EscalationStep.objects.order_by("order").values_list("delay_seconds", flat=True)
    assert list(delays) == [0, 60]
    alarm = Alarm.objects.get(source="test")
    assert alarm.status == "cancelled" and alarm.labels["test"] == "true"
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "alice@example.org", "bob@example.org"
    ]  # fmt: skip


def test_an_escalation_test_fails_naming_the_step_that_reaches_nobody(
    celery_worker, smtp_server, make_person, make_policy
):
    make_policy(
        [(0, [make_person("Alice")], []), (600, [make_person("Away", active=False)], [])],
        name="Weekend",
    )

    failed, out = run_failing("escalationtest", "Weekend", "--step-delay", "0.5")

    assert failed.returncode == 1
    assert "1 step(s) notified, 1 reached nobody" in str(failed)
    assert "Step 2 of 2, round 1: nobody to notify" in str(failed)
    assert "0, 0.5 s (the policy has 0, 600 s)" in out
    assert Alarm.objects.get().status == "cancelled"


def test_an_escalation_test_of_an_unknown_policy_is_refused(db):
    failed, _ = run_failing("escalationtest", "Nope")

    assert "no escalation policy named 'Nope'" in str(failed)


# --- stormtest --------------------------------------------------------------------------------


@pytest.fixture
def storm_guard(settings):
    for key in REAL_REDIS.scan_iter("storm:*"):  # counts of earlier tests and runs
        REAL_REDIS.delete(key)
    settings.STORM_SOURCE_THRESHOLD, settings.STORM_GLOBAL_THRESHOLD = 10, 0
    settings.STORM_WINDOW_SECONDS = 60


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["10001"], "N must be between 1 and 10000"),
        (["0"], "N must be between 1 and 10000"),
        (["501"], "add --yes to go ahead"),
        (["5", "--rate", "0"], "--rate must be above 0"),
    ],
)
def test_a_storm_test_is_bounded(args, refusal):
    failed, _ = run_failing("stormtest", *args)

    assert refusal in str(failed)
    assert not Alarm.objects.exists() and not EscalationPolicy.objects.exists()


def figures(out: str, name: str) -> list[float]:
    line = next(line for line in out.splitlines() if line.startswith(name))
    return [float(value) for value in re.findall(r"p\d+ ([\d.]+) ms", line)]


def test_a_storm_test_is_folded_by_the_storm_guard_pages_nobody_and_cleans_up(
    celery_worker, storm_guard, webhook_channel, webhook_receiver, make_policy
):
    make_policy([(0, [], [webhook_channel])], name="Everything", is_default=True)

    out = run("stormtest", "40", "--rate", "400")

    assert "Accepted: 40 of 40" in out
    p50, p95, p99 = figures(out, "Raise latency")
    assert 0 < p50 <= p95 <= p99
    assert "Folded by the storm guard: 30 " in out
    assert re.search(r"Storm alarm \S+: Alarm storm: 30 alarms from source api", out)
    assert "Notifications sent: 0 " in out
    assert "Cleaned up: cancelled 41 alarm(s), 0 left open" in out
    assert not Alarm.objects.filter(status__in=OPEN_STATUSES).exists()
    assert Alarm.objects.filter(labels__test="true").count() == 40
    assert not Delivery.objects.exists() and not webhook_receiver.requests
    assert list(EscalationPolicy.objects.values_list("name", flat=True)) == ["Everything"]


def test_a_storm_test_with_notify_routes_the_test_alarms_like_real_ones(
    celery_worker, webhook_channel, webhook_receiver, make_policy
):
    make_policy([(0, [], [webhook_channel])], name="Everything", is_default=True)

    out = run("stormtest", "3", "--rate", "50", "--notify")

    assert "notify real people" in out and "Notifications sent: 3 " in out
    posted = [r["json"]["alarm"] for r in webhook_receiver.requests[:3]]
    assert all(alarm["title"].startswith("[TEST] Storm test ") for alarm in posted)
    assert not Alarm.objects.filter(status__in=OPEN_STATUSES).exists()


def test_a_kept_storm_test_is_cleaned_up_later_by_its_run(celery_worker, make_policy):
    out = run("stormtest", "5", "--rate", "100", "--keep")

    run_id = re.search(r"^Run (\w+):", out, re.M).group(1)
    assert Alarm.objects.filter(status="triggered", labels__test_run=run_id).count() == 5

    assert "Cancelled 5 alarm(s)" in run("stormtest", "--cleanup", run_id)
    assert not Alarm.objects.filter(status__in=OPEN_STATUSES).exists()
    assert not EscalationPolicy.objects.exists()
