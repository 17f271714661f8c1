"""The alarm path under faults: a dead SMTP server, a worker killed between steps, Redis down
when the alarm arrives. Nothing accepted may be lost, nothing may be sent twice."""

import signal
import time

import pytest
import requests

from alarms.models import Alarm
from conftest import free_port, wait_until
from notifications.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_failing_smtp_server_marks_the_delivery_failed_and_the_next_step_still_runs(
    client, celery_worker, smtp_server, settings, make_person, make_policy, make_device
):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    smtp_server.reply = "451 4.3.0 Try again later"
    alice, bob = make_person("Alice"), make_person("Bob")
    _, token = make_device(default_policy=make_policy([(0, [alice], []), (2, [bob], [])]))

    alarm_id = client.get("/v1/yealink/alarm", {"token": token}).json()["alarm_id"]

    def alice_failed():
        return Delivery.objects.filter(person=alice, status="failed").first()

    failed = wait_until(alice_failed)
    assert failed.attempts == 3
    assert "451" in failed.error
    smtp_server.reply = None
    wait_until(lambda: [m for m in smtp_server.messages if "bob@example.org" in m.rcpt_tos])
    assert smtp_server.messages[0].rcpt_tos == ["bob@example.org"]
    kinds = list(Alarm.objects.get(pk=alarm_id).events.values_list("kind", flat=True))
    assert kinds.count("delivery_failed") == 1
    assert kinds.count("step_notified") == 2


def test_a_permanent_smtp_refusal_is_not_retried(
    client, celery_worker, smtp_server, make_person, make_policy, make_device
):
    smtp_server.reply = "550 5.1.1 No such mailbox"
    alice = make_person("Alice")
    _, token = make_device(default_policy=make_policy([(0, [alice], [])]))

    client.get("/v1/yealink/alarm", {"token": token})

    failed = wait_until(lambda: Delivery.objects.filter(status="failed").first())
    assert failed.attempts == 1
    assert "550" in failed.error


def _worker(start_process, env, name):
    return start_process(
        ["-m", "celery", "-A", "alarmsite", "worker", "--pool", "solo", "-l", "info", "-n",
         f"{name}@%h", "--without-mingle", "--without-gossip"],
        env,
        log_name=name,
    )  # fmt: skip


def _worker_env(process_env, private_redis, smtp_server, **extra):
    return process_env(
        REDIS_URL=private_redis.url,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp_server.port,
        DELIVERY_RETRY_BASE_SECONDS=0.2,
        **extra,
    )


def test_a_worker_killed_between_steps_loses_nothing_and_the_sweeper_sends_the_step_once(
    client, smtp_server, private_redis, process_env, start_process, start_worker_with_beat,
    settings,
    make_person, make_policy, make_device,
):  # fmt: skip
    alice, bob = make_person("Alice"), make_person("Bob")
    _, token = make_device(default_policy=make_policy([(0, [alice], []), (3, [bob], [])]))
    env = _worker_env(process_env, private_redis, smtp_server)
    worker = _worker(start_process, env, "doomed")
    # Trigger through a web process on the same private broker.
    base = _web(start_process, env)
    trigger = f"{base}/v1/yealink/alarm"
    wait_until(lambda: _get(trigger, token=token) == 200, timeout=20)

    wait_until(lambda: Delivery.objects.filter(person=alice, status="sent").exists(), 20)
    # The worker now holds step 2's countdown task; it dies before it comes due.
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    alarm = Alarm.objects.get()
    assert alarm.current_step == 0
    time.sleep(max(0.0, (alarm.next_escalation_at.timestamp() - time.time())) + 0.5)
    assert not Delivery.objects.filter(person=bob).exists()

    # A new worker with beat: the sweeper finds the overdue step in the database.
    start_worker_with_beat(dict(env, ESCALATION_SWEEP_INTERVAL="1"), "survivor", "-l", "info")
    wait_until(lambda: Delivery.objects.filter(person=bob, status="sent").exists(), 30)
    time.sleep(2)  # a few more sweeps: none may send again
    assert Delivery.objects.filter(person=bob).count() == 1
    recipients = [m.rcpt_tos for m in smtp_server.messages]
    assert recipients == [["alice@example.org"], ["bob@example.org"]]


def _web(start_process, env) -> str:
    """A daphne web process on a free port; its base URL."""
    port = free_port()
    args = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "alarmsite.asgi:application"]
    start_process(args, env, log_name="web")
    return f"http://127.0.0.1:{port}"


def _get(url, **params) -> int | None:
    try:
        return requests.get(url, params=params, timeout=5).status_code
    except requests.ConnectionError:
        return None


def test_an_alarm_raised_while_redis_is_down_is_stored_answered_and_fanned_out_later(
    smtp_server,
    private_redis,
    process_env,
    start_process,
    start_worker_with_beat,
    make_person,
    make_policy,
    make_device,
):
    alice = make_person("Alice")
    _, token = make_device(default_policy=make_policy([(0, [alice], [])]))
    env = _worker_env(process_env, private_redis, smtp_server)
    base = _web(start_process, env)
    wait_until(lambda: _get(f"{base}/v1/alarms/") == 401, timeout=20)
    private_redis.stop()

    response = requests.get(f"{base}/v1/yealink/alarm", params={"token": token}, timeout=30)
    assert response.status_code == 200
    alarm = Alarm.objects.get(pk=response.json()["alarm_id"])
    assert alarm.status == "triggered"
    assert not Delivery.objects.exists()

    private_redis.start()
    start_worker_with_beat(dict(env, ESCALATION_SWEEP_INTERVAL="1"), "survivor", "-l", "info")
    wait_until(lambda: Delivery.objects.filter(person=alice, status="sent").exists(), 30)
    time.sleep(2)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["alice@example.org"]]


def test_an_alarm_raised_while_the_database_is_down_is_answered_503_to_be_retried(
    process_env, start_process, tmp_path
):
    env = process_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/gone", VAR_DIR=str(tmp_path)
    )
    base = _web(start_process, env)
    # No token: refused before the database is asked, so this answers while it is down.
    wait_until(lambda: _get(f"{base}/v1/yealink/alarm") == 404, timeout=20)

    press = requests.get(f"{base}/v1/yealink/alarm", params={"token": "t" * 43}, timeout=30)
    raised = requests.post(
        f"{base}/v1/alarms/raise", json={"title": "Fire"},
        headers={"Authorization": "Bearer " + "t" * 43}, timeout=30,
    )  # fmt: skip

    for response in (press, raised):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "nothing was stored" in response.json()["error"]
