"""A PostgreSQL cluster of the test run's own, which a fault scenario may stop and start: the
machine's shared server is never touched. PostgreSQL refuses to run as root, so as root its
programs run as the `postgres` user, in a directory that user owns."""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .local import free_port


def server_programs() -> Path | None:
    """The directory of the newest installed PostgreSQL server's programs, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    def __init__(self):
        self.bin = server_programs()
        self.port = free_port()
        # Not under pytest's own temporary directory: only root may enter that.
        self.dir = Path(tempfile.mkdtemp(prefix="alarmbroker-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        # Processes are killed here, not the machine's power: fsync off keeps it fast and
        # loses nothing (replicas.PostgresPair turns synchronous_commit back on).
        self.options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1,127.0.0.2"
            " -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def create(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        # Any loopback address (a node partitioned away reaches it on one of its own), and
        # standbys on this machine.
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n")
        self.start()

    def start(self) -> None:
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", self.options, "-l", log, "-w", "start")

    def clone_from(self, primary: "PrivatePostgres") -> None:
        """A standby of `primary`: its base backup, streaming from it from now on."""
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(self.data), "-X", "stream", "-R", "--no-sync", "--checkpoint=fast",
            "-d", f"application_name=standby{self.port}",
        )  # fmt: skip

    def promote(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "promote")

    def kill(self) -> None:
        kill_server(int((self.data / "postmaster.pid").read_text().split()[0]))

    def stop(self) -> None:
        """Stop as an operator's restart does: sessions are ended, transactions rolled back."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.dir, ignore_errors=True)


def kill_server(postmaster: int, also: list[int] = ()) -> None:
    """SIGKILL to a postmaster, every backend of it, and `also` (the manager running it) at
    once, as a lost machine: all stopped first, so none notices the others go and acts."""
    for pid in (postmaster, *also):
        os.kill(pid, signal.SIGSTOP)
    subprocess.run(["pkill", "-KILL", "-P", str(postmaster)], check=False)
    for pid in (postmaster, *also):
        os.kill(pid, signal.SIGKILL)
