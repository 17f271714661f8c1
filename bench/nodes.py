"""The benchmark's `nodes` phase: JSON raises at concurrency 64 through HAProxy, first with one
node's web behind it, then with a second node (its own web, worker and beat, on the same
PostgreSQL and Redis) beside the first, so the table shows what a second node buys on this
machine. Both runs go through the balancer, so its own cost is in both."""

import shutil

from stack import child_env, free_port, wait_answering

CONFIG = """global
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
frontend devices
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance leastconn
{servers}
"""


def start_balancer(stack, name: str, web_ports: list[int]) -> str:
    """HAProxy in front of these webs, as a process of the stack (its CPU is counted)."""
    port = free_port()
    servers = "\n".join(f"    server web{n} 127.0.0.1:{p}" for n, p in enumerate(web_ports))
    config = stack.run_dir / f"{name}.cfg"
    config.write_text(CONFIG.format(port=port, servers=servers))
    stack.start(name, ["haproxy", "-db", "-f", str(config)], child_env())
    base = f"http://127.0.0.1:{port}"
    wait_answering(stack, f"{base}/healthz", name)
    return base


def start_second_node(stack, public_url: str) -> int:
    """web-b, worker-b and beat-b, as the first node's are started; the web's port."""
    port = free_port()
    env = child_env(public_url=public_url)
    stack.start_python("web-b", ["alarmsite.serve", "-b", "127.0.0.1", "-p", str(port),
                                 "alarmsite.asgi:application"], env)  # fmt: skip
    stack.start_python("worker-b", ["celery", "-A", "alarmsite", "--quiet", "worker", "-l",
                                    "info", "-n", "bench-b@%h"], env)  # fmt: skip
    stack.start_python("beat-b", ["celery", "-A", "alarmsite", "--quiet", "beat", "-l", "info",
                                  "-s", str(stack.run_dir / "beat-b")], env)  # fmt: skip
    wait_answering(stack, f"http://127.0.0.1:{port}/healthz", "the second node's web", 90)
    return port


def phase(run, measure, tokens: list[str], count: int) -> dict:
    """`measure(run, tokens, count)` drives the raises at run.base and returns their figures."""
    if shutil.which("haproxy") is None:
        return {"skipped": "HAProxy is not installed"}
    first_base = run.base
    first_port = int(first_base.rsplit(":", 1)[1])
    found = {}
    try:
        print("nodes: JSON raise, concurrency 64, one node behind HAProxy ...", flush=True)
        run.base = start_balancer(run.stack, "balancer-1", [first_port])
        found["one node"] = measure(run, tokens, count)
        run.stack.stop("balancer-1")
        run.settle()
        print("nodes: the same, two nodes behind HAProxy ...", flush=True)
        second_port = start_second_node(run.stack, first_base)
        run.base = start_balancer(run.stack, "balancer-2", [first_port, second_port])
        found["two nodes"] = measure(run, tokens, count)
        run.settle()
    finally:
        run.base = first_base
        run.stack.stop(*[n for n in ("balancer-1", "balancer-2", "web-b", "worker-b", "beat-b")
                         if n in run.stack.processes])  # fmt: skip
    return found


def rows(figures: dict | None) -> list:
    if not figures:
        return []
    if "skipped" in figures:
        return [(f"two nodes behind HAProxy: skipped ({figures['skipped']})",)]
    cells = {}
    for key in ("one node", "two nodes"):
        each = figures.get(key)
        cells[key] = f"{each['per_second']}/s, {sum(each['errors'].values())} err" if each else "-"
    one, two = figures.get("one node"), figures.get("two nodes")
    gain = (
        f"x{two['per_second'] / one['per_second']:.2f}"
        if one and two and one["per_second"] and two["per_second"]
        else "-"
    )
    stored = all(f.get("all_stored") for f in (one, two) if f)
    return [
        ("JSON raise, concurrency 64, through HAProxy",),
        ("  one node (web, worker, beat)", cells["one node"]),
        ("  two nodes (a second web, worker, beat)", cells["two nodes"], "", gain),
        ("  every accepted alarm stored", "yes" if stored else "NO"),
    ]
