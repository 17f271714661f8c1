"""What the README's quick start and API overview say, against what the code does: the secrets
`load_demo` shows once, what `make run` installs, answers the API overview lists."""

import json
import re
import shutil
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command

from conftest import ROOT

README = (ROOT / "README.md").read_text()
# How the quick start names each secret load_demo prints once, by the label it prints.
SECRETS = {
    "Admin login": "the admin password",
    "Desk phone trigger URL": "the desk phone's trigger URL",
    "Panic button API token": "the panic button's API token",
}
TEST_TOOLS = {"pytest", "pytest-django", "playwright", "ruff"}


def words(text: str) -> str:
    return " ".join(text.split())


def section(title: str) -> str:
    return words(README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0])


def api_row(request: str) -> str:
    return next(line for line in README.splitlines() if line.startswith(f"| `{request}`"))


def packages(requirements: str) -> set[str]:
    """The package names a requirements file installs, following `-r`."""
    names = set()
    for line in (ROOT / requirements).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= packages(line[3:].strip())
        elif line:
            names.add(re.split(r"[\[=<>~ ]", line, maxsplit=1)[0].lower())
    return names


@pytest.mark.django_db
def test_the_quick_start_names_each_secret_load_demo_shows_once(settings, tmp_path):
    settings.VAR_DIR = tmp_path  # where it keeps the trigger URL
    out = StringIO()
    call_command("load_demo", stdout=out)

    shown = [line.split(" (shown once")[0] for line in out.getvalue().splitlines()
             if "(shown once" in line]  # fmt: skip
    assert shown == list(SECRETS)
    quick_start = section("Quick start")
    assert [name for name in SECRETS.values() if name not in quick_start] == []


def test_make_run_installs_only_the_runtime_packages_and_make_test_adds_the_tools(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")

    def dry_run(target: str) -> str:
        """What `make TARGET` would run on a fresh checkout (no virtualenv yet)."""
        result = subprocess.run(
            ["make", "-n", "-B", target, f"VENV={tmp_path / 'venv'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    run, test, lint = dry_run("run"), dry_run("test"), dry_run("lint")
    assert "pip install -r requirements.txt" in run and "requirements-dev.txt" not in run
    assert "pip install -r requirements-dev.txt" in test and "requirements-dev.txt" in lint
    assert not TEST_TOOLS & packages("requirements.txt")
    assert TEST_TOOLS <= packages("requirements-dev.txt")
    assert packages("requirements.txt") <= packages("requirements-dev.txt")


@pytest.mark.django_db
def test_the_yealink_row_names_the_403_of_a_phone_with_another_mac(client, make_device):
    _, token = make_device(mac_address="00:15:65:aa:bb:cc")

    response = client.get("/v1/yealink/alarm", {"token": token, "mac": "001565000000"})

    assert response.status_code == 403
    row = api_row("GET /v1/yealink/alarm?token=…")
    assert "403" in row and "MAC" in row


@pytest.mark.django_db
def test_the_pagerduty_row_shows_the_400_body_as_it_is_sent(client, make_device):
    _, token = make_device(name="PagerDuty sender", kind="pagerduty", room=None)

    response = client.post(
        "/v2/enqueue",
        json.dumps({"routing_key": token, "event_action": "trigger"}),
        content_type="application/json",
    )

    assert response.status_code == 400
    documented = re.search(r"400 `(\{.*?\})`", api_row("POST /v2/enqueue")).group(1)
    for key, value in response.json().items():
        assert f'"{key}"' in documented
        if isinstance(value, str):
            assert f'"{value}"' in documented
