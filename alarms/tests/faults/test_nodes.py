"""Two nodes behind HAProxy: one is lost whole (its web, worker and beat killed at once) in the
middle of a stream of alarms, or cut off from the database by firewall rules. Devices reach
the other node; nothing answered 2xx is lost, nobody is paged twice for one step, and a node
that cannot store an alarm stops saying it did within seconds."""

import time

import pytest
import requests
from django.db import connection

from conftest import test_database_url

from .checks import check_sent_again, sending, settle, tally
from .cluster import Partition
from .traffic import Stream, accepted, answers, raise_alarm

pytestmark = [pytest.mark.postgres, pytest.mark.faults]


def test_a_node_killed_mid_storm_loses_nothing_and_pages_nobody_twice(
    cluster, mail_sink, hook_sink, escalation, report
):
    hook_sink.delay = 0.3  # a slow provider: messages are in flight on both nodes
    token = escalation([(0, 2, [hook_sink.url("node-1")]), (5, 1, [])])
    cluster.start()

    stream = Stream(cluster.url, token, per_second=10, dedup=True).start()
    time.sleep(8)
    doomed = cluster.nodes["a"]
    pids = {pid for process in doomed.processes for pid in process.pids()}
    cluster.kill("a")
    killed_at, killed = time.time(), time.monotonic()
    in_flight = sending(pids)
    time.sleep(12)
    raises = stream.stop()
    alarm_ids = accepted(raises)
    settle(alarm_ids, [mail_sink, hook_sink], timeout=60)

    # Each of the dead worker's two pool processes may have been between a post and its record.
    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2, resends_allowed=2)
    result.counts["answers"] = answers(raises)
    result.counts["never accepted"] = sum(1 for r in raises if not r.alarm_id)
    check_sent_again(result, in_flight, killed_at)
    if result.counts["never accepted"]:
        result.problems.append("a device that kept trying was never accepted")
    if not in_flight:
        result.problems.append("the dead node was sending nothing: no fault happened")
    if not any(r.started > killed for r in raises):
        result.problems.append("no alarm was raised after the kill")
    report("a node killed with SIGKILL mid-storm", result)


def test_a_node_cut_off_from_the_database_stops_accepting_within_seconds(
    private_postgres, cluster, mail_sink, hook_sink, escalation, report
):
    if private_postgres is None or not Partition.possible():
        pytest.skip("needs the private PostgreSQL pair, and iptables as root to cut a node off")
    token = escalation([(0, 1, [hook_sink.url("cut-1")]), (5, 1, [])])
    # Node b reaches the database on a loopback address of its own, which the rules cut.
    cut_off = cluster.nodes["b"]
    cut_off.configure(DATABASE_URL=test_database_url().replace("127.0.0.1", "127.0.0.2"))
    cluster.start()
    ports = [int(port) for port in str(connection.settings_dict["PORT"]).split(",")]

    stream = Stream(cluster.url, token, per_second=5, dedup=True).start()
    time.sleep(6)
    direct = []  # raises sent to node b itself, past the load balancer
    with Partition("127.0.0.2", ports) as partition:
        red_after = _until_unready(cut_off.url, timeout=30) - partition.started
        for n in range(3):
            direct.append(raise_alarm(cut_off.url, token, f"Straight to the cut-off node {n}"))
        time.sleep(15)
        healed_at = time.monotonic()
    green_after = _until_ready(cut_off.url, timeout=60) - healed_at
    time.sleep(3)
    raises = stream.stop()
    alarm_ids = accepted(raises)
    settle(alarm_ids, [mail_sink, hook_sink], timeout=60)

    result = tally(alarm_ids, [mail_sink, hook_sink], steps_each=2)
    result.counts["answers"] = answers(raises)
    result.counts["cut-off node's /readyz red after"] = f"{red_after:.1f} s"
    result.counts["back after healing"] = f"{green_after:.1f} s"
    result.counts["answers of the cut-off node"] = answers(direct)
    if any(a in (200, 201) for r in direct for a in r.answers):
        result.problems.append("the cut-off node answered 2xx for an alarm it cannot store")
    if red_after > 15:
        result.problems.append(f"its /readyz stayed green {red_after:.1f} s")
    if green_after > 30:
        result.problems.append(f"its /readyz was not green again {green_after:.1f} s after")
    if sum(1 for r in raises if not r.alarm_id):
        result.problems.append("a device that kept trying was never accepted")
    report("a node cut off from the database", result)


def _readyz(url: str) -> int | None:
    try:
        return requests.get(f"{url}/readyz", timeout=10).status_code
    except requests.RequestException:
        return None


def _until_unready(url: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while _readyz(url) == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    return time.monotonic()


def _until_ready(url: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while _readyz(url) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    return time.monotonic()
