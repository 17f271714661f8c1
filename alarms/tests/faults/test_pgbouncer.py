"""The stack behind PgBouncer in transaction pooling, with fewer server sessions than the
processes want: each transaction may run on another session, so any session state the code
relied on (a prepared statement, a server-side cursor, a session lock) would fail here."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.db import connection

from .checks import settle, tally
from .local import free_port, wait_until
from .traffic import accepted, burst

pytestmark = pytest.mark.postgres

SERVER_SESSIONS = 3


class PgBouncer:
    """PgBouncer in front of the test database's server; it refuses to run as root, so as root
    it runs as `postgres`, in a directory that user owns."""

    def __init__(self, server_port: int):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="alarmbroker-pgbouncer-"))
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
* = host=127.0.0.1 port={server_port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/users.txt
pool_mode = transaction
default_pool_size = {SERVER_SESSIONS}
max_client_conn = 500
logfile = {self.dir}/pgbouncer.log
""")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.process = None

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> "PgBouncer":
        command = ["pgbouncer", str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_until(lambda: "listening on 127.0.0.1" in self.log(), timeout=10)
        return self

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pgbouncer(transactional_db):
    if shutil.which("pgbouncer") is None:
        pytest.skip("needs PgBouncer (Debian's pgbouncer)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT inet_server_port()")  # the server itself (the primary, of a pair)
        (port,) = cursor.fetchone()
    bouncer = PgBouncer(port).start()
    yield bouncer
    bouncer.stop()


def test_the_stack_behind_pgbouncer_in_transaction_pooling_loses_nothing(
    pgbouncer, stack, mail_sink, hook_sink, escalation, report
):
    token = escalation([(0, 2, [hook_sink.url("bouncer-1")]), (2, 1, [])])
    stack.configure(
        DATABASE_URL=pgbouncer.url(connection.settings_dict["NAME"]), DATABASE_PGBOUNCER="true"
    )
    stack.start()
    stack.wait_ready(stack.worker("second-worker"))

    alarm_ids = accepted(burst(stack.url, token, 30, threads=8))
    settle(alarm_ids, [mail_sink, hook_sink], timeout=60)

    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2)
    result.counts["server sessions"] = SERVER_SESSIONS
    refused = [line for line in pgbouncer.log().splitlines() if "ERROR" in line]
    result.counts["PgBouncer errors"] = len(refused)
    if refused:
        result.problems.append(f"PgBouncer logged: {refused[:3]}")
    if len(alarm_ids) < 30:
        result.problems.append(f"{30 - len(alarm_ids)} alarms were not accepted")
    report("the stack behind PgBouncer in transaction pooling", result)
