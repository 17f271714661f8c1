"""Board benchmark in a real browser: the dispatch board in headless Chromium with 100, 1,000
and 10,000 open alarms, driven as a dispatcher would. Prints one table:

- first screenful: from the page's start to its first card, and to every alarm loaded;
- the longest main-thread task while it loaded (what freezes the page);
- a filter change and a search, each to the frame that shows it;
- a new alarm raised, to its card on the page;
- heap and DOM nodes once loaded;
- a burst of alarms raised at a steady rate: how far behind the page's counters fall.

Its own stack (web, worker, beat) on this machine's PostgreSQL and Redis:

    python bench/board_browser.py [--sizes 100 1000 10000] [--burst 1000 --rate 200]
"""

import argparse
import os
import shutil
import statistics
import threading
import time
import uuid
from datetime import timedelta

from stack import (
    child_env,
    configure,
    create_database,
    migrate,
    run_stack,
    start_broker,
    write_result,
)

database_url, redis_url, run_dir = configure(
    "board-browser",
    "postgres://postgres@127.0.0.1:5432/alarmbroker_bench_board",
    "redis://127.0.0.1:6379/13",
)

from django.contrib.auth.models import Group, User  # noqa: E402
from django.utils import timezone  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from alarms import board, lifecycle  # noqa: E402
from alarms.models import Alarm  # noqa: E402
from alarms.timeline import Actor  # noqa: E402
from alarmsite.celery import app as celery_app  # noqa: E402
from devices.models import Device, Room, Site  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SEVERITIES = ["critical"] * 3 + ["high"] * 3 + ["warning"] * 3 + ["info"]
BENCH = Actor("board benchmark")

# Runs in the page before its own script: records long tasks, the first card, the moment the
# board says it holds every alarm, when each card was put in, and every change of the counters.
PROBE = """
window.__bench = {longest: 0, first: null, loaded: null, inserted: {}, counts: []};
new PerformanceObserver((list) => {
  for (const task of list.getEntries()) __bench.longest = Math.max(__bench.longest, task.duration);
}).observe({type: "longtask", buffered: true});
new MutationObserver((changes) => {
  const now = performance.now();
  for (const change of changes) {
    for (const node of change.addedNodes) {
      if (node.nodeType !== 1) continue;
      if (node.classList.contains("card")) {
        if (__bench.first === null) __bench.first = now;
        __bench.inserted[node.dataset.id] = Date.now();
      }
    }
  }
  const state = document.body && document.body.dataset.state;
  if (__bench.loaded === null && state === "complete") __bench.loaded = now;
  const counters = document.querySelectorAll(".counter b");
  if (counters.length) {
    const total = [...counters].reduce((sum, b) => sum + (parseInt(b.textContent, 10) || 0), 0);
    const last = __bench.counts[__bench.counts.length - 1];
    if (!last || last[1] !== total) __bench.counts.push([Date.now(), total]);
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true,
                      attributeFilter: ["data-state"]});
"""

# A change made in the page, to the end of the frame that shows it.
TO_FRAME = """async ([selector, value, kind]) => {
  const control = document.querySelector(selector);
  const start = performance.now();
  control.value = value;
  control.dispatchEvent(new Event(kind));
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  return performance.now() - start;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--burst", type=int, default=1000, help="alarms in the burst")
    parser.add_argument("--rate", type=float, default=200.0, help="the burst's alarms a second")
    args = parser.parse_args()
    create_database(database_url, fresh=True)
    migrate(child_env())
    result = run_stack(run_dir, lambda sink, stack: measure(stack, args))
    if result:
        print_table(result)
        write_result(result, "board-browser")


def measure(stack, args) -> dict:
    base = start_broker(stack, celery_app, ["-c", "1"])
    password = uuid.uuid4().hex
    user = User.objects.create_user(f"bench-{uuid.uuid4().hex[:8]}", password=password)
    user.groups.add(Group.objects.get(name="Dispatch"))
    sites = [Site.objects.create(name=f"Site {n}") for n in range(5)]
    rooms = [Room.objects.create(site=sites[n % 5], name=f"Room {n}") for n in range(20)]
    phone = Device.objects.create(name="Desk phone 1", kind="yealink", site=sites[0], room=rooms[0])
    rows = []
    # Playwright's sync API runs an event loop in this thread; our database calls are plain sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--enable-precise-memory-info"],
        )  # fmt: skip
        for size in args.sizes:
            fill_board(size, sites, rooms, phone)
            rows.append(measure_size(browser, base, user.username, password, size, args))
            print(f"measured {size} open alarms", flush=True)
        browser.close()
    return {"rows": rows, "burst": args.burst, "rate": args.rate}


def fill_board(size: int, sites, rooms, phone) -> None:
    """`size` open alarms, most from monitoring, three a person's press, none folded: the page
    shows every one (the worst case; a storm alarm would fold most of them)."""
    Alarm.objects.all().delete()
    now = timezone.now()
    alarms = []
    for n in range(size):
        person = n < 3
        alarms.append(
            Alarm(
                source="yealink" if person else "alertmanager",
                dedup_key=f"bench:{n}:{uuid.uuid4().hex}",
                title=f"Emergency key, desk phone {n}" if person else f"HighLatency on node-{n}",
                message="p99 latency above 2 s for 5 minutes" if not person else "",
                severity=SEVERITIES[n % len(SEVERITIES)],
                labels={}
                if person
                else {"alertname": "HighLatency", "instance": f"node-{n}:9100", "job": "node"},
                device=phone if person else None,
                site=sites[n % 5],
                room=rooms[n % 20],
                last_occurrence_at=now - timedelta(seconds=n),
            )
        )
    Alarm.objects.bulk_create(alarms, batch_size=2000)


def measure_size(browser, base: str, username: str, password: str, size: int, args) -> dict:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.goto(base + "/board/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-state=complete]", timeout=300_000)
    # The measured load: a reload, as a dispatcher's page after a restart or a lost network.
    context.add_init_script(PROBE)
    page.reload()
    page.wait_for_selector("body[data-state=complete]", timeout=300_000)
    page.wait_for_timeout(500)
    loaded = page.evaluate("({...__bench, heap: performance.memory.usedJSHeapSize,"
                           " nodes: document.getElementsByTagName('*').length})")  # fmt: skip
    filter_ms = page.evaluate(TO_FRAME, ["#filter-severity", "warning", "change"])
    page.evaluate(TO_FRAME, ["#filter-severity", "", "change"])
    search_ms = page.evaluate(TO_FRAME, ["#search", "node-77", "input"])
    page.evaluate(TO_FRAME, ["#search", "", "input"])
    new_card_s = new_card_seconds(page)
    page.evaluate("__bench.longest = 0")
    behind = burst(page, args.burst, args.rate)
    burst_longest = page.evaluate("__bench.longest")
    context.close()
    return {
        "open": size,
        "first_screenful_s": loaded["first"] / 1000,
        "all_loaded_s": loaded["loaded"] / 1000,
        "longest_task_ms": loaded["longest"],
        "filter_change_ms": filter_ms,
        "search_ms": search_ms,
        "new_card_s": new_card_s,
        "heap_mb": loaded["heap"] / 2**20,
        "dom_nodes": loaded["nodes"],
        **behind,
        "burst_longest_task_ms": burst_longest,
    }


def new_card_seconds(page) -> float:
    """A critical alarm raised now, to its card on the page (it sorts first: it fired last)."""
    started = time.time()
    outcome = lifecycle.raise_alarm(
        source="api", dedup_key=f"bench:new:{uuid.uuid4().hex}", title="Smoke in server room",
        severity="critical", actor=BENCH,
    )  # fmt: skip
    alarm_id = str(outcome.alarm.pk)
    page.wait_for_selector(f'.card[data-id="{alarm_id}"]', timeout=30_000)
    return (page.evaluate(f"__bench.inserted['{alarm_id}']") / 1000) - started


def burst(page, count: int, rate: float) -> dict:
    """`count` new alarms, each published to the board as its raise would, at `rate` a second;
    how long after each was sent the page's counters counted it."""
    now = timezone.now()
    alarms = [
        Alarm(source="alertmanager", dedup_key=f"bench:burst:{uuid.uuid4().hex}",
              title=f"DiskFull on node-{n}", severity=SEVERITIES[n % len(SEVERITIES)],
              labels={"alertname": "DiskFull", "instance": f"node-{n}:9100"},
              last_occurrence_at=now)
        for n in range(count)
    ]  # fmt: skip
    Alarm.objects.bulk_create(alarms)
    before = page.evaluate("__bench.counts[__bench.counts.length - 1][1]")
    sent: list[float] = []

    def publish():
        start = time.monotonic()
        for n, alarm in enumerate(alarms):
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
            sent.append(time.time())
            board.publish_new(alarm)  # numbered and sent at once: no transaction is open

    sender = threading.Thread(target=publish)
    sender.start()
    sender.join()
    deadline = time.monotonic() + 120
    while page.evaluate("__bench.counts[__bench.counts.length - 1][1]") < before + count:
        if time.monotonic() > deadline:
            raise SystemExit("the page did not count every alarm of the burst within 2 minutes")
        page.wait_for_timeout(100)
    counts = page.evaluate("__bench.counts")
    lags = []
    for n, at in enumerate(sent):
        shown = next(t for t, total in counts if total >= before + n + 1)
        lags.append(max(0.0, shown / 1000 - at))
    return {
        "burst_lag_p50_s": statistics.median(lags),
        "burst_lag_max_s": max(lags),
        "burst_sent_s": sent[-1] - sent[0],
        "burst_all_shown_after_last_s": lags[-1],
    }


def print_table(result: dict) -> None:
    print(
        f"\nBoard in Chromium ({result['burst']} alarms at {result['rate']:.0f}/s in the burst)\n"
    )
    head = ("open", "first screen", "all loaded", "longest task", "filter", "search",
            "new card", "heap", "DOM nodes", "burst lag p50", "burst lag max",
            "burst longest task")  # fmt: skip
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for row in result["rows"]:
        print(" | ".join([
            f"{row['open']:,}", f"{row['first_screenful_s']:.2f} s", f"{row['all_loaded_s']:.2f} s",
            f"{row['longest_task_ms']:.0f} ms", f"{row['filter_change_ms']:.0f} ms",
            f"{row['search_ms']:.0f} ms", f"{row['new_card_s']:.2f} s", f"{row['heap_mb']:.0f} MB",
            f"{row['dom_nodes']:,}", f"{row['burst_lag_p50_s']:.2f} s",
            f"{row['burst_lag_max_s']:.2f} s", f"{row['burst_longest_task_ms']:.0f} ms",
        ]))  # fmt: skip


if __name__ == "__main__":
    main()
