"""Two nodes behind a load balancer, as the production shape runs them: each node its own web,
worker and beat (a Stack each, sharing the database and Redis), HAProxy in front sending each
request to a node whose /readyz answers 200. A scenario kills a node, or cuts one off from the
database with firewall rules on its own loopback address."""

import shutil
import subprocess
import time
from pathlib import Path

import requests

from .local import free_port, wait_until
from .stack import Stack

# How HAProxy watches the nodes: a check each second, two failed to take a node out, two
# passed to bring it back; a check unanswered for 2 s has failed.
CHECK = "inter 1s fall 2 rise 2"


class LoadBalancer:
    def __init__(self, directory: Path, nodes: dict[str, int]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / "haproxy.cfg"
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port} check" for name, port in nodes.items()
        )
        # A request is sent to another node only when no connection to the first was made
        # (retry-on's default): a POST a node may have stored is never sent twice.
        self.config.write_text(f"""global
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    retries 2
    option redispatch
frontend devices
    bind 127.0.0.1:{self.port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server {CHECK}
{servers}
""")
        self.log = (directory / "haproxy.log").open("ab")
        self.process = None

    def start(self) -> "LoadBalancer":
        self.process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(self.config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_until(self._answers, timeout=30)
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


class Cluster:
    """Nodes `a` and `b`, each a Stack of its own (its own directory and port), the same secret
    key, Redis and database; PUBLIC_BASE_URL is the load balancer's."""

    def __init__(self, directory: Path, redis_server, mail_port: int, **settings):
        self.nodes = {
            name: Stack(directory / name, redis_server, mail_port, **settings) for name in "ab"
        }
        for node in self.nodes.values():
            node.dir.mkdir(exist_ok=True)
        self.balancer = LoadBalancer(directory, {n: s.port for n, s in self.nodes.items()})
        self.url = self.balancer.url
        for node in self.nodes.values():
            node.configure(PUBLIC_BASE_URL=self.url)

    def configure(self, **settings) -> None:
        for node in self.nodes.values():
            node.configure(**settings)

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()
        self.balancer.start()
        wait_until(lambda: all(self.ready(name) for name in self.nodes), timeout=60)

    def ready(self, name: str) -> bool:
        try:
            return requests.get(f"{self.nodes[name].url}/readyz", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    def kill(self, name: str) -> None:
        """SIGKILL to the node's web, worker and beat at once: a lost machine."""
        for process in self.nodes[name].processes:
            process.signal(9)
        for process in self.nodes[name].processes:
            process.kill()

    def exited(self) -> list[str]:
        return [f"{n}/{p}" for n, node in self.nodes.items() for p in node.exited()]

    def errors(self, most: int = 5) -> list[str]:
        return [f"{n}/{e}" for n, node in self.nodes.items() for e in node.errors(most)][-most:]

    def stop(self) -> None:
        self.balancer.stop()
        for node in self.nodes.values():
            node.stop()


class Partition:
    """Firewall rules dropping every packet between `address` (one node's own loopback
    address) and these ports, both ways: a cable pulled, not a refused connection. As root
    only; the rules are in a chain of their own, removed on exit."""

    def __init__(self, address: str, ports: list[int]):
        self.address, self.ports = address, ports
        self.chain = f"ALARMBROKER-{ports[0]}"

    @staticmethod
    def possible() -> bool:
        return shutil.which("iptables") is not None and _iptables("-L", "OUTPUT", "-n")

    def __enter__(self) -> "Partition":
        try:
            _iptables("-N", self.chain, check=True)
            for port in self.ports:
                for side in (("-d", self.address, "--dport"), ("-s", self.address, "--sport")):
                    _iptables("-A", self.chain, "-p", "tcp", *side, str(port), "-j", "DROP",
                              check=True)  # fmt: skip
            _iptables("-I", "OUTPUT", "-j", self.chain, check=True)
        except RuntimeError:
            self.__exit__()  # no rule of a half-made partition stays behind
            raise
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        _iptables("-D", "OUTPUT", "-j", self.chain)
        _iptables("-F", self.chain)
        _iptables("-X", self.chain)


def _iptables(*args: str, check: bool = False) -> bool:
    done = subprocess.run(["iptables", "-w", *args], capture_output=True, timeout=30)
    if check and done.returncode:
        raise RuntimeError(f"iptables {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.returncode == 0
