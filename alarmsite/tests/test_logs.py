"""Logs: one JSON object a line from the web process (daphne's access log included) and the
worker, the alarm's id on every line about it, and no token anywhere: not in a Yealink URL,
an ACK link, an Authorization header or a traceback."""

import io
import json
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from alarms.acklinks import issue_ack_link
from alarms.models import Alarm
from alarmsite import runner
from alarmsite.celery import app as celery_app
from conftest import ROOT, free_port, wait_until
from core import logs
from notifications.models import Delivery


def capture(log_format: str = "json"):
    """A logger that writes through the project's handler (filters and formatter) into a
    string buffer."""
    config = logs.logging_config(log_format, "INFO")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(config["formatters"][log_format]["()"]())
    for name in config["handlers"]["console"]["filters"]:
        handler.addFilter(config["filters"][name]["()"]())
    logger = logging.getLogger(f"test.capture.{log_format}")
    logger.handlers, logger.propagate, logger.level = [handler], False, logging.INFO
    return logger, handler.stream


def lines(text: str) -> list[dict]:
    """Every line as the JSON object it must be."""
    parsed = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)  # fails the test on any line that is not JSON
            assert isinstance(record, dict), line
            parsed.append(record)
    return parsed


def test_every_line_is_one_json_object_with_time_level_logger_message_and_extras():
    logger, out = capture()

    logger.warning("disk %s full", "/var", extra={"free_mb": 12})

    (record,) = lines(out.getvalue())
    assert list(record)[:4] == ["time", "level", "logger", "message"]
    assert record["message"] == "disk /var full" and record["level"] == "WARNING"
    assert record["free_mb"] == 12 and record["time"].endswith("+00:00")


def test_lines_logged_about_an_alarm_carry_its_id_and_only_those():
    logger, out = capture()

    with logs.about_alarm("alarm-1"):
        logger.info("step ran")
        with logs.about_alarm():
            logs.concerning("alarm-2")
            logger.info("raised")
        logger.info("back to the first")
    logger.info("about nothing")

    ids = [record.get("alarm_id") for record in lines(out.getvalue())]
    assert ids == ["alarm-1", "alarm-2", "alarm-1", None]


def test_tokens_are_redacted_from_messages_extra_fields_and_tracebacks():
    logger, out = capture()
    secrets = ["dev1ceT0ken", "Ack-L1nk_t0ken", "s3cretBearer", "pr0xyPassw0rd", "tr4ceT0ken"]

    logger.info("GET /v1/yealink/alarm?token=dev1ceT0ken&mac=00:15:65")
    logger.info("opened", extra={"path": "https://alarms.example.org/a/Ack-L1nk_t0ken"})
    logger.info("headers %s", {"Authorization": "Bearer s3cretBearer", "Accept": "*/*"})
    logger.info("proxy said", extra={"data": {"headers": ["Authorization: Basic pr0xyPassw0rd"]}})
    try:
        raise ValueError("http://upstream/v1/devices/heartbeat?token=tr4ceT0ken failed")
    except ValueError:
        logger.exception("upstream call crashed")

    text = out.getvalue()
    assert not [secret for secret in secrets if secret in text]
    records = lines(text)
    assert records[0]["message"] == "GET /v1/yealink/alarm?token=[redacted]&mac=00:15:65"
    assert records[1]["path"] == "https://alarms.example.org/a/[redacted]"
    assert "'Authorization': '[redacted]'" in records[2]["message"]
    assert "?token=[redacted] failed" in records[4]["exc_info"]


def test_plain_lines_read_in_a_terminal_and_name_the_alarm():
    logger, out = capture("plain")

    with logs.about_alarm("4f2c"):
        logger.info("acknowledged by Alice (ACK link /a/s3cr3t)")

    line = out.getvalue().strip()
    assert re.fullmatch(r"\S+ INFO test\.capture\.plain: acknowledged by Alice "
                        r"\(ACK link /a/\[redacted\]\) \[alarm 4f2c\]", line)  # fmt: skip


def test_an_unknown_log_format_stops_the_start():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.logging_config("xml", "INFO")


# --- real processes ------------------------------------------------------------------------


def _log_of(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.log"
    return path.read_text() if path.exists() else ""


def _csrf(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


@pytest.mark.django_db(transaction=True)
def test_the_web_process_logs_json_with_tokens_redacted_from_its_access_log(
    process_env, start_process, tmp_path, alice, make_device
):
    _, device_token = make_device(person=alice)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(VAR_DIR=tmp_path, LOG_FORMAT="json", LOG_LEVEL="INFO")
    start_process(["-m", "alarmsite.serve", "-b", "127.0.0.1", "-p", str(port),
                   "alarmsite.asgi:application"], env, log_name="web")  # fmt: skip

    def up():
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(up, timeout=20)
    press = requests.get(f"{base}/v1/yealink/alarm", params={"token": device_token}, timeout=10)
    assert press.status_code == 200
    alarm_id = press.json()["alarm_id"]
    ack_path = urlsplit(issue_ack_link(Alarm.objects.get(pk=alarm_id), person=alice)).path
    ack_token = ack_path.removeprefix("/a/")
    with requests.Session() as browser:
        page = browser.get(base + ack_path, timeout=10)
        acked = browser.post(base + ack_path, {"csrfmiddlewaretoken": _csrf(page.text)},
                             headers={"Referer": base + ack_path}, timeout=10)  # fmt: skip
    assert acked.status_code == 200 and Alarm.objects.get(pk=alarm_id).status == "acknowledged"
    guessed = "GuessedAckT0kenGuessedAckT0ken"
    assert requests.get(f"{base}/a/{guessed}", timeout=10).status_code == 404

    def logged_the_guess():
        """the access line of the guessed link is written"""
        return '"path": "/a/[redacted]", "status": 404' in _log_of(tmp_path, "web")

    wait_until(logged_the_guess, timeout=10)
    text = _log_of(tmp_path, "web")
    for secret in (device_token, ack_token, guessed):
        assert secret not in text
    records = lines(text)
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    access = [record for record in records if record["logger"] == "daphne.access"]
    press_line = next(r for r in access if r["path"].startswith("/v1/yealink"))
    assert (press_line["method"], press_line["path"], press_line["status"]) == (
        "GET", "/v1/yealink/alarm?token=[redacted]", 200
    )  # fmt: skip
    assert [(r["method"], r["status"]) for r in access if r["path"] == "/a/[redacted]"] == [
        ("GET", 200),
        ("POST", 200),
        ("GET", 404),
    ]
    not_found = [r for r in records if r["logger"] == "django.request"]
    assert [r["message"] for r in not_found] == ["Not Found: /a/[redacted]"]
    about_alarm = {
        r["message"]: r.get("alarm_id") for r in records if r["logger"] == "alarms.lifecycle"
    }
    assert about_alarm == {
        "raised by device Desk phone 1: Emergency key pressed: Alice": alarm_id,
        "acknowledged by Alice (ACK link)": alarm_id,
    }


@pytest.mark.django_db(transaction=True)
def test_the_worker_logs_json_lines_that_name_the_alarm_they_concern(
    client, process_env, start_process, tmp_path, webhook_receiver, webhook_channel,
    make_policy, make_device,
):  # fmt: skip
    celery_app.control.purge()
    env = process_env(VAR_DIR=tmp_path, LOG_FORMAT="json")
    start_process(["-m", "celery", "-A", "alarmsite", "--quiet", "worker", "--pool", "solo",
                   "-l", "info", "-n", "logs@%h", "--without-mingle", "--without-gossip"],
                  env, log_name="worker")  # fmt: skip
    wait_until(lambda: "ready." in _log_of(tmp_path, "worker"), timeout=20)
    # A step a second after the raise: its countdown task is about this one alarm.
    _, token = make_device(default_policy=make_policy([(1, [], [webhook_channel])]))

    alarm_id = client.get("/v1/yealink/alarm", {"token": token}).json()["alarm_id"]

    wait_until(lambda: Delivery.objects.filter(alarm_id=alarm_id, status="sent").exists())

    def escalate_logged():
        """the worker logged that the escalate task succeeded"""
        return [line for line in _log_of(tmp_path, "worker").splitlines()
                if "escalation.tasks.escalate[" in line and "succeeded" in line]  # fmt: skip

    wait_until(escalate_logged, timeout=10)
    text = _log_of(tmp_path, "worker")
    assert token not in text
    records = lines(text)

    def alarm_ids(logger: str, starts: str) -> list:
        return [r.get("alarm_id") for r in records
                if r["logger"] == logger and r["message"].startswith(starts)]  # fmt: skip

    assert alarm_ids("alarms.engine", "Step 1 of 1, round 1: notifying") == [alarm_id]
    assert alarm_ids("notifications.delivery.sending", "sent to Ops webhook by webhook") == [
        alarm_id
    ]
    assert alarm_ids("celery.app.trace", "Task escalation.tasks.escalate[") == [alarm_id]


def test_the_runner_and_compose_serve_the_web_process_with_the_logging_access_log():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "-m alarmsite.serve" in services["web"]["command"]
    assert "-m alarmsite.serve" in Path(runner.__file__).read_text()
    assert "alarmsite.serve" in (ROOT / "Dockerfile").read_text()
