"""/healthz and /readyz: each part of the alarm path reported by name; 503 while one is gone."""

import pytest

from conftest import wait_until

pytestmark = pytest.mark.django_db


def test_healthz_says_the_web_process_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


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
