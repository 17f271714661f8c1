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
import yaml
from django.urls import resolve

from alarms.api.integrations import AlertmanagerView
from alarms.models import Alarm
from conftest import ROOT, wait_until

from .alertmanager_process import NOT_INSTALLED, post_alert, running

EXAMPLE = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
AMTOOL = shutil.which("amtool")


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
    _, token = make_device(name="Prometheus", kind="alertmanager", room=None)
    (tmp_path / "token").write_text(token)
    config, webhook = example()
    webhook["url"] = live_server.url + urlsplit(webhook["url"]).path
    webhook["http_config"]["authorization"]["credentials_file"] = str(tmp_path / "token")
    config["route"]["group_interval"] = "1s"
    with running(config, tmp_path) as url:
        yield url


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
