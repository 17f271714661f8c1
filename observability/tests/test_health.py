"""/healthz and /readyz: each part of the alarm path reported by name; 503 while one is gone."""

import pytest
import requests

from alarms.tests.faults.postgres import server_programs
from alarms.tests.faults.replicas import PostgresPair
from conftest import free_port, wait_until

pytestmark = pytest.mark.django_db


def test_healthz_says_the_web_process_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_probes_answer_whatever_host_a_balancer_or_kubernetes_sends(client, settings):
    settings.ALLOWED_HOSTS = ["alarms.example.org"]
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").json() == {"status": "ok"}
    assert "checks" in client.get("/readyz", HTTP_HOST="10.1.2.3:8000").json()
    # Anything else under that Host is still refused.
    assert client.get("/v1/schema", HTTP_HOST="10.1.2.3:8000").status_code == 400


@pytest.mark.postgres
def test_readyz_is_red_on_a_standby_which_takes_no_alarm(process_env, start_process, tmp_path):
    if server_programs() is None:
        pytest.skip("needs a PostgreSQL server installed to run a standby")
    pair = PostgresPair().create()
    try:
        port = free_port()
        standby = f"postgres://postgres@127.0.0.1:{pair.standby.port}/postgres"
        start_process(
            ["-m", "alarmsite.serve", "-b", "127.0.0.1", "-p", str(port),
             "alarmsite.asgi:application"],
            process_env(DATABASE_URL=standby, VAR_DIR=str(tmp_path)), log_name="standby-web",
        )  # fmt: skip
        status, body = wait_until(lambda: _readyz(port), timeout=30)
        assert status == 503
        assert body["checks"]["database"] == {"ok": False, "error": "a standby: read-only"}
    finally:
        pair.remove()


def _readyz(port: int) -> tuple[int, dict] | None:
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    except requests.RequestException:
        return None  # not up yet
    return answer.status_code, answer.json()


def test_readyz_names_what_is_missing(client, private_redis, settings):
    settings.REDIS_URL = private_redis.url  # a Redis no worker or beat has reported to

    response = client.get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == {"ok": True} and checks["redis"] == {"ok": True}
    assert checks["worker"]["ok"] is False and "not heard from" in checks["worker"]["error"]
    assert checks["beat"]["ok"] is False


def test_readyz_follows_redis_down_and_back_with_a_real_worker_and_beat(
    client, transactional_db, private_redis, process_env, start_worker_with_beat, settings, tmp_path
):
    settings.REDIS_URL = private_redis.url
    env = process_env(REDIS_URL=private_redis.url, VAR_DIR=str(tmp_path))
    start_worker_with_beat(env, "ready")

    def status():
        return client.get("/readyz").status_code

    wait_until(lambda: status() == 200, timeout=45)
    checks = client.get("/readyz").json()["checks"]
    assert checks["worker"]["seconds_ago"] < 60 and checks["beat"]["ok"]

    private_redis.stop()
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"]["redis"]["ok"] is False
    assert down.json()["checks"]["database"] == {"ok": True}

    private_redis.start()  # empty: worker and beat report again within 15 s
    wait_until(lambda: status() == 200, timeout=45)
