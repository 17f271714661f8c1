"""The benchmark's DC-09 phase: alarm panels of our own (alarms/drills/dc09_panel.py), each on
its own TCP connection, send encrypted SIA DCS burglary events (each a new zone: a new alarm)
to the receiver (`manage.py listen_sia`) as fast as it ACKs them. Every ACK comes only after
the alarm is committed, so ACKs a second are events stored a second; the stored alarms are
counted afterwards and their first notifications awaited at the sink."""

import socket
import sys
import threading
import time

from stack import child_env, free_port, percentiles

from alarms.drills.dc09_panel import Dc09Panel, Link
from alarms.models import Alarm
from devices.models import Device

KEY = "0123456789ABCDEF"  # AES-128


def panels(count: int, site, policy) -> list[Dc09Panel]:
    for n in range(count):
        Device.objects.create(name=f"bench-panel-{n}", kind=Device.Kind.SIA_PANEL, site=site,
                              sia_account=f"{0xB000 + n:X}", sia_key=KEY, default_policy=policy,
                              rate_limit_per_minute=10**9)  # fmt: skip
    return [Dc09Panel(f"{0xB000 + n:X}", key=KEY) for n in range(count)]


def start_receiver(stack) -> int:
    port = free_port()
    argv = [sys.executable, "manage.py", "listen_sia", "--port", str(port)]
    stack.start("sia", argv, child_env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stack.check()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return port
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the DC-09 receiver did not listen within 60 s")


def send_for(panel: Dc09Panel, port: int, seconds: float, out: dict) -> None:
    """Burglary events on one connection, each awaited, until `seconds` have passed."""
    wire, zone, answers = Link("127.0.0.1", port), 0, out.setdefault("answers", [])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        zone += 1
        sent = time.monotonic()
        try:
            kind = panel.read(wire.send(panel.sia("BA", str(zone)))).kind
        except (OSError, AssertionError) as exc:
            kind = f"error: {exc.__class__.__name__}"
        answers.append((kind, sent, time.monotonic()))
    wire.close()


def phase(run, site, policy, connections: int, seconds: float):
    """The figures of one run: the receiver started (the caller stops it once its CPU is
    measured), then loaded; the clients are threads of this process."""
    sending = panels(connections, site, policy)
    port = start_receiver(run.stack)
    outs = [{} for _ in sending]
    threads = [threading.Thread(target=send_for, args=(panel, port, seconds, out))
               for panel, out in zip(sending, outs, strict=True)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = [answer for out in outs for answer in out["answers"]]
    acked = [a for a in answers if a[0] == "ACK"]
    span = max(a[2] for a in answers) - min(a[1] for a in answers) if answers else 0
    ids = [str(pk) for pk in Alarm.objects.filter(source="sia").values_list("pk", flat=True)]
    figures = {
        "connections": connections, "seconds": round(span, 2), "acked": len(acked),
        "not_acked": len(answers) - len(acked), "stored": len(ids),
        "per_second": round(len(acked) / span, 1) if span else None,
        "answer_ms": percentiles([(a[2] - a[1]) * 1000 for a in acked]),
    }  # fmt: skip
    figures["all_notified"] = run.sink.wait_for(ids, run.sizes.drain_seconds)
    return figures


def rows(figures: dict | None, target: int) -> list:
    if not figures:
        return []
    met = (figures["per_second"] or 0) >= target and figures["stored"] == figures["acked"]
    answer = figures["answer_ms"]
    return [
        (f"DC-09 panels: encrypted events over {figures['connections']} TCP connections",),
        ("  ACKed a second (each once stored)", f"{figures['per_second']}/s", "(no DC-09)", "",
         f">= {target}/s, all stored", "MET" if met else "MISSED"),
        ("  ACKed / stored / not ACKed; all notified",
         f"{figures['acked']} / {figures['stored']} / {figures['not_acked']}; "
         f"{'yes' if figures['all_notified'] else 'NO'}"),
        ("  answer ms p50/p99/max",
         f"{answer.get('p50', '-')}/{answer.get('p99', '-')}/{answer.get('max', '-')}"),
    ]  # fmt: skip
