"""deploy/alertmanager/alertmanager.yml: it posts every alert and its resolve to our Alertmanager
endpoint with the integration's token read from a file; amtool accepts it; and a real
Alertmanager running it opens and resolves an alarm on a running broker (both where Debian's
prometheus-alertmanager is installed)."""

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from django.urls import resolve

from alarms.api.integrations import AlertmanagerView
from alarms.models import Alarm
from conftest import ROOT, free_port, wait_until

EXAMPLE = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
AMTOOL = shutil.which("amtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
NOT_INSTALLED = "Alertmanager is not installed (apt-get install prometheus-alertmanager)"


def example() -> tuple[dict, dict]:
    """The example's configuration, and the webhook its route sends to."""
    config = yaml.safe_load(EXAMPLE.read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    return config, receivers[config["route"]["receiver"]]["webhook_configs"][0]


def test_the_example_posts_alerts_and_resolves_to_our_endpoint_with_a_token_from_a_file():
    _, webhook = example()

    assert resolve(urlsplit(webhook["url"]).path).func.cls is AlertmanagerView
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization["type"] == "Bearer"
    assert PurePosixPath(authorization["credentials_file"]).is_absolute()
    assert "credentials" not in authorization, "the token stays out of the configuration"


@pytest.mark.skipif(AMTOOL is None, reason=NOT_INSTALLED)
def test_amtool_accepts_the_example():
    result = subprocess.run(
        [AMTOOL, "check-config", str(EXAMPLE)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def alertmanager(tmp_path, live_server, make_device):
    """A real Alertmanager running the example, pointed at this test's live server with the
    token of a new Alertmanager integration in a file. Its group interval is shortened to a
    second so that the resolve is sent at once instead of a minute later."""
    if ALERTMANAGER is None:
        pytest.skip(NOT_INSTALLED)
    _, token = make_device(name="Prometheus", kind="alertmanager", room=None)
    (tmp_path / "token").write_text(token)
    config, webhook = example()
    webhook["url"] = live_server.url + urlsplit(webhook["url"]).path
    webhook["http_config"]["authorization"]["credentials_file"] = str(tmp_path / "token")
    config["route"]["group_interval"] = "1s"
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "alertmanager.log").open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ready(url), timeout=30)
    yield url
    process.terminate()
    process.wait(10)


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/-/ready", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def post_alert(alertmanager: str, **fields) -> None:
    alert = {"labels": {"alertname": "DiskFull", "instance": "db-1"},
             "annotations": {"summary": "Disk full on db-1"}, **fields}  # fmt: skip
    response = requests.post(alertmanager + "/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text


@pytest.mark.django_db(transaction=True)
def test_a_real_alertmanager_running_the_example_opens_and_resolves_an_alarm(alertmanager):
    post_alert(alertmanager)

    def opened():
        """the alert is an open alarm"""
        return Alarm.objects.filter(source="alertmanager", status="triggered").first()

    alarm = wait_until(opened, timeout=30)
    assert alarm.title == "Disk full on db-1" and alarm.labels["instance"] == "db-1"

    post_alert(alertmanager, endsAt=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())

    def resolved():
        """the alarm is resolved"""
        return Alarm.objects.get(pk=alarm.pk).status == "resolved"

    wait_until(resolved, timeout=30)
