"""What the settings make of DATABASE_URL for each kind of process: libpq's multi-host form
and its options are kept, the pool added on top, and a server that stops answering is given
up on within seconds."""

import json
import os
import subprocess
import sys

from conftest import ROOT

READ = "from django.conf import settings; print(json.dumps(settings.DATABASES['default']))"


def inherited() -> dict:
    """This process's environment but what it set for itself (importing alarmsite.asgi sets
    the web process's CONN_MAX_AGE and DATABASE_POOL)."""
    own = ("CONN_MAX_AGE", "DATABASE_POOL", "DATABASE_PGBOUNCER")
    return {name: value for name, value in os.environ.items() if name not in own}


def database_settings(**env) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", f"import json, django; django.setup(); {READ}"],
        env={**inherited(), "DJANGO_SETTINGS_MODULE": "alarmsite.settings", **env},
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(done.stdout)


URL = "postgres://alarms@db-a:5432,db-b:5433/alarms?target_session_attrs=read-write"


def test_several_hosts_and_their_options_reach_the_web_process_s_pool():
    database = database_settings(DATABASE_URL=URL, DATABASE_POOL="true")
    assert (database["HOST"], database["PORT"]) == ("db-a,db-b", "5432,5433")
    options = database["OPTIONS"]
    assert options["target_session_attrs"] == "read-write"
    assert options["pool"]["max_size"] == 10
    assert (options["connect_timeout"], options["tcp_user_timeout"]) == (3, 5000)


def test_a_worker_keeps_its_connection_and_the_url_may_set_its_own_timeouts():
    database = database_settings(DATABASE_URL=URL + "&connect_timeout=10", DATABASE_POOL="false")
    assert "pool" not in database["OPTIONS"]
    assert database["OPTIONS"]["connect_timeout"] == 10
    assert database["CONN_MAX_AGE"] == 60 and database["CONN_HEALTH_CHECKS"] is True
