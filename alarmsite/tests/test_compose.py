"""docker-compose.yml runs what exists with settings the project reads, all in the README."""

import importlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from celery import Celery

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "beat", "calls", "mail-in", "sia", "web-b", "worker-b", "beat-b")
REQUIRED = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PUBLIC_BASE_URL", "ALLOWED_HOSTS")


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def settings_variables() -> set[str]:
    """Every name settings.py reads: env("X"…), env.str("X"…), env.db("X"…) and the like."""
    source = (ROOT / "alarmsite" / "settings.py").read_text()
    return set(re.findall(r"\benv(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source))


def words(command) -> list[str]:
    """A command's words, with `sh -c "…"` scripts split into theirs too."""
    tokens = shlex.split(command) if isinstance(command, str) else list(command)
    result = []
    for token in tokens:
        result.extend(words(token) if " " in token else [token])
    return result


def test_settings_parser_finds_the_variables_settings_reads():
    assert {"DATABASE_URL", "SECRET_KEY", "EMAIL_PORT", "DEBUG"} <= settings_variables()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_service_sets_the_required_settings(services, name):
    missing = set(REQUIRED) - set(services[name]["environment"])
    assert not missing, f"{name} does not set {sorted(missing)}"


def test_app_services_share_one_environment(services):
    environments = [services[name]["environment"] for name in APP_SERVICES]
    assert all(env == environments[0] for env in environments)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_variable_an_app_service_sets_is_read_by_settings(services, name):
    unknown = set(services[name]["environment"]) - settings_variables()
    assert not unknown, f"{name} sets {sorted(unknown)}, which alarmsite/settings.py never reads"


def test_web_migrates_then_serves_the_asgi_application_with_daphne(services):
    command = words(services["web"]["command"])
    # alarmsite.serve is daphne, with its access log through logging.
    assert command.index("migrate") < command.index("alarmsite.serve")
    target = next(word for word in command[command.index("alarmsite.serve") :] if ":" in word)
    assert target == "alarmsite.asgi:application"
    module, attribute = target.split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


@pytest.mark.parametrize("name", ["worker", "beat"])
def test_worker_and_beat_run_the_projects_celery_app(services, name):
    command = words(services[name]["command"])
    assert command[:2] == ["celery", "-A"] and name in command
    assert isinstance(importlib.import_module(command[2]).celery_app, Celery)


def test_postgres_redis_and_web_have_healthchecks(services):
    # One test, not parametrized: a test id "postgres" would look like the postgres marker.
    for name in ("postgres", "redis", "web"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_start_only_after_their_dependencies_are_healthy(services, name):
    depends_on = services[name]["depends_on"]
    assert "redis" in depends_on
    assert all(dep["condition"] == "service_healthy" for dep in depends_on.values())


def test_readme_documents_every_variable_settings_reads():
    readme = (ROOT / "README.md").read_text()
    undocumented = {name for name in settings_variables() if f"| `{name}` |" not in readme}
    assert not undocumented, f"add {sorted(undocumented)} to the README's Configuration table"


HA = ("web-b", "worker-b", "beat-b", "balancer", "postgres-standby", "redis-replica",
      "sentinel-1", "sentinel-2", "sentinel-3")  # fmt: skip


def ha_environment() -> dict[str, str]:
    lines = (ROOT / "deploy" / "compose" / "ha.env").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name: value for name, value in pairs}


def test_the_ha_profile_adds_a_second_node_and_the_standbys(services):
    assert all(services[name]["profiles"] == ["ha"] for name in HA)
    for name in ("worker", "beat"):
        assert services[f"{name}-b"]["command"] == services[name]["command"]
    # Only the first web migrates; the second serves the same application.
    assert "migrate" not in words(services["web-b"]["command"])
    assert "alarmsite.asgi:application" in words(services["web-b"]["command"])


def test_ha_env_points_every_process_at_both_databases_and_the_sentinels(services):
    env = ha_environment()
    assert "@postgres:5432,postgres-standby:5432/" in env["DATABASE_URL"]
    assert env["DATABASE_URL"].endswith("?target_session_attrs=read-write")
    sentinels = [address.split(":")[0] for address in env["REDIS_SENTINELS"].split(",")]
    assert sentinels == ["sentinel-1", "sentinel-2", "sentinel-3"]
    # Each is read by the settings or by the compose file itself.
    compose = (ROOT / "docker-compose.yml").read_text()
    assert all(name in settings_variables() or f"${{{name}:" in compose for name in env)


def test_the_balancer_checks_readiness_and_knows_both_webs():
    config = (ROOT / "deploy" / "compose" / "haproxy.cfg").read_text()
    assert "uri /readyz" in config
    assert re.findall(r"^\s+server (\S+) \1:8000 check$", config, re.M) == ["web", "web-b"]
    if shutil.which("haproxy"):
        checked = subprocess.run(
            ["haproxy", "-c", "-f", str(ROOT / "deploy" / "compose" / "haproxy.cfg")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_primary_waits_for_no_standby_while_it_is_made(services):
    # The image's first start runs its own server with the command's options, where no
    # standby can connect: a synchronous_standby_names there would hang the making for ever.
    assert services["postgres"]["command"] == ["sh", "/primary.sh"]
    scripts = ROOT / "deploy" / "compose"
    assert "synchronous_standby_names" not in (scripts / "postgres-primary.sh").read_text()
    assert "synchronous_standby_names" in (scripts / "postgres-standby.sh").read_text()
    for script in scripts.glob("*.sh"):
        checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert checked.returncode == 0, f"{script.name}: {checked.stderr}"
