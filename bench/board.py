"""Board benchmark: N authenticated board sockets, alarms raised at a steady rate, and the delay
from each API answer to each client receiving that alarm's event.

Run against a running stack that shares this environment's DATABASE_URL and REDIS_URL
(the script makes its own user and device there):

    python bench/board.py --url http://127.0.0.1:8000 --clients 500 --alarms 100 --rate 5
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

import requests
import websockets
from stack import percentiles

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alarmsite.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402

from alarms import lifecycle  # noqa: E402
from alarms.models import OPEN_STATUSES, Alarm  # noqa: E402
from alarms.timeline import Actor  # noqa: E402
from devices.models import Device, Room, Site  # noqa: E402


def bench_credentials() -> tuple[str, str, str]:
    """A Dispatch user and a device of the benchmark's own, made fresh each run."""
    password = uuid.uuid4().hex
    user, _ = User.objects.get_or_create(username="board-bench")
    user.set_password(password)
    user.is_active = True
    user.save()
    user.groups.add(Group.objects.get(name="Dispatch"))
    site, _ = Site.objects.get_or_create(name="Benchmark site")
    room, _ = Room.objects.get_or_create(site=site, name="Benchmark room")
    device = Device.objects.filter(name="board-bench").first() or Device(name="board-bench")
    token = device.rotate_token()
    device.room, device.kind, device.rate_limit_per_minute = room, "generic", 1_000_000
    device.save()
    return user.username, password, token


def close_bench_alarms() -> None:
    """Resolve what the run raised, so the next run's snapshots start small."""
    actor = Actor("board benchmark")
    for alarm in Alarm.objects.filter(device__name="board-bench", status__in=OPEN_STATUSES):
        lifecycle.resolve(alarm.pk, actor)


def login(base: str, username: str, password: str) -> str:
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=10)
    response = session.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": password,
              "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=10,
        allow_redirects=False,
    )  # fmt: skip
    if response.status_code != 302:
        sys.exit(f"login failed: HTTP {response.status_code}")
    return f"sessionid={session.cookies['sessionid']}"


class Client:
    def __init__(self):
        self.received: dict[str, float] = {}  # alarm id -> monotonic time of its first event
        self.ready = asyncio.Event()

    async def run(self, ws_url, cookie, origin, stop: asyncio.Event):
        async with websockets.connect(
            ws_url, additional_headers={"Cookie": cookie}, origin=origin, max_queue=None
        ) as socket:
            async for raw in socket:
                now = time.monotonic()
                message = json.loads(raw)
                if message["type"] in ("snapshot", "snapshot_part") and message["done"]:
                    self.ready.set()
                elif message["type"] == "alarm":
                    self.received.setdefault(message["alarm"]["id"], now)
                if stop.is_set():
                    return


def raise_alarm(base: str, token: str, index: int) -> tuple[str, float, float]:
    sent = time.monotonic()
    response = requests.post(
        f"{base}/v1/alarms/raise",
        json={"title": f"Benchmark alarm {index}", "dedup_key": uuid.uuid4().hex,
              "severity": "warning"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )  # fmt: skip
    answered = time.monotonic()
    response.raise_for_status()
    return response.json()["alarm_id"], sent, answered


async def main(args, username, password, token):
    cookie = login(args.url, username, password)
    ws_url = args.url.replace("http", "ws", 1) + "/ws/board/"
    stop = asyncio.Event()
    clients = [Client() for _ in range(args.clients)]
    tasks = []
    started = time.monotonic()
    for i, client in enumerate(clients):
        tasks.append(asyncio.create_task(client.run(ws_url, cookie, args.url, stop)))
        if i % 25 == 24:
            await asyncio.sleep(0.5)  # a wall of boards reconnects gradually, not in one burst
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
    connected = time.monotonic() - started
    print(f"{args.clients} clients connected in {connected:.1f}s")

    answers: dict[str, tuple[float, float]] = {}  # alarm id -> (request sent, answered)
    interval = 1 / args.rate
    next_at = time.monotonic()
    for index in range(args.alarms):
        alarm_id, sent, answered = await asyncio.to_thread(raise_alarm, args.url, token, index)
        answers[alarm_id] = (sent, answered)
        next_at += interval
        await asyncio.sleep(max(0, next_at - time.monotonic()))
    deadline = time.monotonic() + args.drain
    while time.monotonic() < deadline and not all(
        len(c.received.keys() & answers.keys()) == len(answers) for c in clients
    ):
        await asyncio.sleep(0.2)
    stop.set()
    for task in tasks:
        task.cancel()

    from_request, from_answer, missing = [], [], 0
    for client in clients:
        for alarm_id, (sent, answered) in answers.items():
            if alarm_id in client.received:
                from_request.append((client.received[alarm_id] - sent) * 1000)
                # The event may beat the HTTP answer to the client: that counts as no delay.
                from_answer.append(max(0.0, client.received[alarm_id] - answered) * 1000)
            else:
                missing += 1
    expected = len(clients) * len(answers)
    print(f"alarms raised: {len(answers)} at {args.rate}/s; events expected: {expected}")
    print(f"events received: {len(from_answer)}; missing: {missing}")
    figures = {"clients": args.clients, "alarms": len(answers), "rate": args.rate,
               "connect_seconds": round(connected, 1), "events_expected": expected,
               "events_received": len(from_answer), "events_missing": missing}  # fmt: skip
    for label, delays in (("API answer", from_answer), ("API request", from_request)):
        if delays:
            figures[f"from {label} ms"] = stats = percentiles(delays)
            print(
                f"delay from {label} to client (ms): "
                f"p50 {stats['p50']:.1f}  p95 {stats['p95']:.1f}  p99 {stats['p99']:.1f}  "
                f"max {stats['max']:.1f}  mean {stats['mean']:.1f}"
            )
    print("every client got every event" if missing == 0 else "EVENTS LOST")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--alarms", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="alarms per second")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for stragglers")
    parser.add_argument("--json", help="also write the figures to this file")
    try:
        sys.exit(asyncio.run(main(parser.parse_args(), *bench_credentials())))
    finally:
        close_bench_alarms()
