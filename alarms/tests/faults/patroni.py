"""Two PostgreSQL servers run by Patroni, with etcd as the store it elects the leader in, as
operators run them: a primary and a synchronous standby (Patroni's `synchronous_mode`), the
standby promoted by Patroni alone once the primary's leader key expires. The same parts as
replicas.PostgresPair offers, so every scenario runs on either."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from .local import free_port, wait_until
from .postgres import kill_server, server_programs

# The leader key lives this long unrenewed: Patroni's failover time. Its own rule: loop_wait
# plus twice retry_timeout must fit within it.
TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 1, 4


def installed() -> bool:
    return all(shutil.which(program) for program in ("patroni", "etcd")) and bool(server_programs())


class Node:
    """One Patroni and the PostgreSQL server it runs."""

    def __init__(self, directory: Path, name: str, etcd_port: int):
        self.name, self.dir = name, directory / name
        self.port, self.api_port = free_port(), free_port()
        self.dir.mkdir()
        self.config = self.dir / "patroni.yml"
        self.config.write_text(_config(self, etcd_port))
        self.process = None

    def start(self) -> None:
        self.process = _as_postgres(["patroni", str(self.config)], self.dir / "patroni.log")

    def stop(self) -> None:
        """SIGTERM, as systemd stops it: Patroni stops its server first."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)

    def kill(self) -> None:
        """Patroni and its server with SIGKILL, both stopped first so neither sees the other go:
        a lost machine."""
        postmaster = self._postmaster()
        if postmaster is None:
            raise RuntimeError(f"{self.name}: no postmaster.pid, so no server to kill")
        kill_server(postmaster, also=[self.process.pid])
        self.process.wait(10)

    def _postmaster(self) -> int | None:
        try:
            return int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def takes_writes(self) -> bool:
        return self._ask("SELECT NOT pg_is_in_recovery()") is True

    def in_recovery(self) -> bool:
        return self._ask("SELECT pg_is_in_recovery()") is True

    def has_sync_standby(self) -> bool:
        return self._ask("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == 1

    def _ask(self, query: str):
        try:
            address = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
            with psycopg.connect(address, connect_timeout=1, autocommit=True) as session:
                return session.execute(query).fetchone()[0]
        except psycopg.Error:
            return None


class PatroniPair:
    manager = "Patroni"

    def __init__(self):
        # Not under pytest's temporary directory: only root may enter that.
        self.dir = Path(tempfile.mkdtemp(prefix="alarmbroker-patroni-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.nodes = [Node(self.dir, name, self.etcd_port) for name in ("pg1", "pg2")]
        self.ports = [node.port for node in self.nodes]
        if os.geteuid() == 0:
            for path in self.dir.rglob("*"):
                shutil.chown(path, "postgres")
        self.etcd = None
        self.lost: Node | None = None

    @property
    def primary(self) -> Node:
        return next(node for node in self.nodes if node.takes_writes())

    def create(self) -> "PatroniPair":
        peers = f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd = _as_postgres(
            ["etcd", "--name", "etcd", "--data-dir", str(self.dir / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--listen-peer-urls", peers, "--initial-advertise-peer-urls", peers,
             "--initial-cluster", f"etcd={peers}"],
            self.dir / "etcd.log",
        )  # fmt: skip
        first, second = self.nodes
        first.start()  # the first bootstraps the cluster and leads it
        wait_until(first.takes_writes, timeout=60, interval=0.2)
        second.start()  # the second clones it and follows
        self._whole()
        return self

    def _whole(self) -> None:
        wait_until(lambda: any(n.has_sync_standby() for n in self.nodes), timeout=90, interval=0.2)

    def kill_primary(self) -> None:
        self.lost = self.primary
        self.lost.kill()

    def promote(self) -> float:
        """Patroni promotes: nothing to do but wait. Returns the last moment the standby was
        seen still a standby (the promotion came after it)."""
        (standby,) = [node for node in self.nodes if node is not self.lost]
        seen = time.monotonic()
        deadline = seen + 6 * TTL
        while standby.in_recovery() or not standby.takes_writes():
            seen = time.monotonic()
            if seen > deadline:
                raise RuntimeError(f"Patroni did not promote {standby.name} in {6 * TTL} s")
            time.sleep(0.05)
        return seen

    def rejoin(self) -> None:
        """The lost node's Patroni started again: it rejoins as the new primary's standby."""
        self.lost.start()
        self.lost = None
        self._whole()

    # The whole database restarted (both servers, as an operator's maintenance does).
    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self._whole()

    def remove(self) -> None:
        for node in self.nodes:
            if node.process and node.process.poll() is None:
                node.kill()
        if self.etcd and self.etcd.poll() is None:
            self.etcd.kill()
            self.etcd.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _as_postgres(command: list[str], log: Path) -> subprocess.Popen:
    """PostgreSQL refuses to run as root: so do Patroni and etcd here, as `postgres`."""
    root = os.geteuid() == 0
    return subprocess.Popen(
        command, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=log.parent,
        user="postgres" if root else None, group="postgres" if root else None,
        env={**os.environ, "HOME": str(log.parent)},
    )  # fmt: skip


def _config(node: Node, etcd_port: int) -> str:
    # fsync off as on every fault cluster: processes are killed here, not the power.
    return f"""scope: alarmbroker-faults
name: {node.name}
restapi:
  listen: 127.0.0.1:{node.api_port}
  connect_address: 127.0.0.1:{node.api_port}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: {TTL}
    loop_wait: {LOOP_WAIT}
    retry_timeout: {RETRY_TIMEOUT}
    synchronous_mode: true
    postgresql:
      use_pg_rewind: false
      parameters:
        wal_level: replica
        max_wal_senders: 5
        max_connections: 200
        fsync: "off"
        full_page_writes: "off"
  initdb:
    - auth: trust
  pg_hba:
    - local all all trust
    - host all all 127.0.0.0/8 trust
    - host replication all 127.0.0.0/8 trust
postgresql:
  listen: 127.0.0.1,127.0.0.2:{node.port}
  connect_address: 127.0.0.1:{node.port}
  data_dir: {node.dir / "data"}
  bin_dir: {server_programs()}
  pgpass: {node.dir / "pgpass"}
  authentication:
    superuser: {{username: postgres}}
    replication: {{username: postgres}}
  parameters:
    unix_socket_directories: {node.dir}
"""
