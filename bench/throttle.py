"""A storm to five phones: 1,000 alarms, each paging the same 5 people by SMS, on the
production shape (web, worker, beat) with a local server speaking Twilio's Messages API.

    .venv/bin/python bench/throttle.py --alarms 1000 --people 5 --limit 5/30s

It prints, per phone, the messages its phone got and the most in any window of the limit,
and checks that nothing was dropped: every alarm's page to every person went (alone or in a
bundle), every alarm holds a reply code on every phone, and each phone's bundle answers for
the alarms it carried ("Reply 100a to acknowledge all"). The limit is shortened from 15
minutes to seconds so the bundle arrives within the run; the counting is the same.
"""

import argparse
import json
import re
import sys
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import requests
from stack import (
    child_env,
    configure,
    create_database,
    migrate,
    run_stack,
    start_broker,
    write_result,
)

DATABASE_URL, REDIS_URL, RUN_DIR = configure(
    "throttle", "postgres://postgres@127.0.0.1:5432/alarmbroker_bench", "redis://127.0.0.1:6379/5"
)
NAME = "throttle-bench"

from alarmsite.celery import app as celery_app  # noqa: E402
from devices.models import Device, Person  # noqa: E402
from escalation.models import EscalationPolicy, EscalationStep  # noqa: E402
from notifications.delivery.throttle import parse  # noqa: E402
from notifications.models import Delivery, NotificationChannel, ReplyCode  # noqa: E402

SID = "AC" + "0" * 32


class Phones(ThreadingHTTPServer):
    """Twilio's Messages API: what each phone number received, and when."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), TwilioHandler)
        self.got: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_port}"


class TwilioHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        form = {
            k: v[0]
            for k, v in parse_qs(
                self.rfile.read(int(self.headers["Content-Length"])).decode()
            ).items()
        }
        with self.server.lock:
            self.server.got[form["To"]].append((time.time(), form["Body"]))
        body = json.dumps({"sid": "SM" + uuid.uuid4().hex, "status": "queued", "to": form["To"]})
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def prepare(phones_url: str, people: int) -> tuple[str, list[str]]:
    """Five people with phones, an SMS gateway to the stand-in, one policy paging them all."""
    Device.objects.filter(name=NAME).delete()
    NotificationChannel.objects.update_or_create(
        name=f"{NAME} Twilio", defaults={"kind": "twilio", "enabled": True, "config": {
            "account_sid": SID, "auth_token": "t" * 32, "from": "+14155550100",
            "base_url": phones_url}},
    )  # fmt: skip
    numbers = [f"+4915123{n:06d}" for n in range(people)]
    persons = [Person.objects.update_or_create(name=f"{NAME} {n}", defaults={"phone": number})[0]
               for n, number in enumerate(numbers)]  # fmt: skip
    policy, _ = EscalationPolicy.objects.update_or_create(name=NAME, defaults={"repeat_count": 0})
    step, _ = EscalationStep.objects.update_or_create(
        policy=policy, order=0, defaults={"delay_seconds": 0, "methods": ["sms"]}
    )
    step.persons.set(persons)
    device = Device(name=NAME, kind=Device.Kind.GENERIC, default_policy=policy,
                    rate_limit_per_minute=1_000_000)  # fmt: skip
    token = device.rotate_token()
    device.save()
    return token, numbers


def run(args, sink, stack) -> dict:
    create_database(DATABASE_URL, fresh=True)
    env = child_env({"THROTTLE_SMS": args.limit})
    migrate(env)
    phones = Phones()
    threading.Thread(target=phones.serve_forever, daemon=True).start()
    token, numbers = prepare(phones.url, args.people)
    base = start_broker(
        stack, celery_app, ["-n", f"{NAME}@%h"], {"all": {"THROTTLE_SMS": args.limit}}
    )
    session = requests.Session()

    def raise_one(n: int) -> int:
        body = {"title": f"Storm alarm {n}", "dedup_key": f"storm-{n}", "severity": "warning"}
        return session.post(f"{base}/v1/alarms/raise", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {token}"}).status_code  # fmt: skip

    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(raise_one, range(args.alarms)))
    raised = time.time() - started
    (limit,) = parse(args.limit)[:1]
    # Wait for the window to free and the bundles to go: every page sent, alone or bundled.
    pages = Delivery.objects.filter(alarm__device__name=NAME, event="notify")
    deadline = time.time() + limit.seconds * 4 + 300
    wanted = args.alarms * args.people
    while time.time() < deadline and pages.filter(status="sent").count() < wanted:
        stack.check()
        time.sleep(1)
    settled = time.time() - started
    per_phone = {}
    for number in numbers:
        got = sorted(phones.got.get(number, []))
        busiest = max(
            (sum(1 for t, _ in got if s <= t < s + limit.seconds) for s, _ in got), default=0
        )
        carried = [int(m[1]) for _, text in got
                   if (m := re.search(r"to acknowledge all (\d+)", text))]  # fmt: skip
        per_phone[number] = {
            "messages": len(got), "most in a window": busiest,
            "bundle carries": max(carried, default=0),
            "codes": ReplyCode.objects.filter(address=number, alarm__device__name=NAME).count(),
        }  # fmt: skip
    statuses = defaultdict(int)
    for status in pages.values_list("status", flat=True):
        statuses[status] += 1
    return {
        "alarms": args.alarms, "people": args.people, "limit": args.limit,
        "answered 201": sum(1 for a in answers if a == 201), "raise seconds": round(raised, 1),
        "all sent after seconds": round(settled, 1),
        "pages": pages.count(), "pages by status": dict(statuses),
        "bundled pages": pages.exclude(bundled_into=None).count(), "phones": per_phone,
    }  # fmt: skip


def print_table(result: dict) -> None:
    limit = parse(result["limit"])[0]
    print(f"Storm of {result['alarms']} alarms to {result['people']} people by SMS, limit "
          f"{limit}: {result['answered 201']} answered 201 in {result['raise seconds']} s; "
          f"pages {result['pages']} ({result['pages by status']}), "
          f"{result['bundled pages']} of them in bundles, all sent "
          f"{result['all sent after seconds']} s after the first raise")  # fmt: skip
    print("| phone | messages | most in a window | alarms in its largest bundle | reply codes |")
    print("| --- | --- | --- | --- | --- |")
    for number, got in result["phones"].items():
        print(f"| {number} | {got['messages']} | {got['most in a window']} (limit {limit.count}) "
              f"| {got['bundle carries']} | {got['codes']} of {result['alarms']} |")  # fmt: skip


def check(result: dict) -> list[str]:
    limit = parse(result["limit"])[0]
    problems = []
    if result["answered 201"] != result["alarms"]:
        problems.append("not every alarm was answered 201")
    if result["pages by status"] != {"sent": result["alarms"] * result["people"]}:
        problems.append(f"pages not all sent: {result['pages by status']}")
    for number, got in result["phones"].items():
        if got["most in a window"] > limit.count:
            problems.append(f"{number} got {got['most in a window']} in one window")
        if got["codes"] != result["alarms"]:
            problems.append(f"{number} holds {got['codes']} codes")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alarms", type=int, default=1000)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--limit", default="5/30s", help="THROTTLE_SMS for the run")
    args = parser.parse_args()
    result = run_stack(RUN_DIR, lambda sink, stack: run(args, sink, stack))
    if result is None:
        return 130
    print_table(result)
    problems = check(result)
    for problem in problems:
        print(f"FAIL {problem}")
    write_result(result, "throttle")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
