"""A real Prometheus Alertmanager for the tests that need one (Debian's
prometheus-alertmanager): started on a configuration, ready, stopped; and an alert posted to it
as Prometheus posts one."""

import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

from conftest import free_port, wait_until

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
NOT_INSTALLED = "Alertmanager is not installed (apt-get install prometheus-alertmanager)"


@contextmanager
def running(config: dict, directory: Path):
    """An Alertmanager on this configuration, its data and log in `directory`: its URL."""
    if ALERTMANAGER is None:
        pytest.skip(NOT_INSTALLED)
    (directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={directory / 'alertmanager.yml'}",
         f"--storage.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(directory / "alertmanager.log").open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/-/ready", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def post_alert(alertmanager: str, **fields) -> None:
    """The disk-full alert, as Prometheus sends it (`endsAt` in the past: it is resolved)."""
    alert = {"labels": {"alertname": "DiskFull", "instance": "db-1"},
             "annotations": {"summary": "Disk full on db-1"}, **fields}  # fmt: skip
    response = requests.post(alertmanager + "/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text
