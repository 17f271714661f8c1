"""The broker's own metrics at /metrics: every figure moves as an alarm lives (raised over HTTP,
its step in a Celery worker, a webhook that fails once, ACK and resolve), Redis outages lose
figures and never alarms, and the shipped dashboard and alert rules name only what exists."""

import json
import logging
import math
import re
import shutil
import subprocess
import time

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, free_port, raise_over_api, wait_until
from devices.models import Device
from notifications.models import Delivery
from observability import instruments

pytestmark = pytest.mark.django_db(transaction=True)

SCRAPER = "scrape-secret"


@pytest.fixture(autouse=True)
def _recording(settings):
    """Each test starts recording at once, whatever an outage before it left behind."""
    settings.METRICS_TOKEN = SCRAPER
    instruments.resume()
    yield
    instruments.resume()


def scrape(client) -> dict:
    """{(sample name, labels): value} of a scrape with the token, from outside the allowed
    networks."""
    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {SCRAPER}"
    )
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def raise_alarm(client, token: str) -> str:
    return raise_over_api(client, token, title="Fridge too warm", source="fridge", severity="high")


def act(admin_client, alarm_id: str, action: str) -> None:
    response = admin_client.post(f"/v1/alarms/{alarm_id}/{action}", content_type="application/json")
    assert response.status_code == 200, response.content


def wait_sent(alarm_id: str, event: str, count: int) -> None:
    def all_sent():
        """every delivery of this event is sent"""
        rows = list(Delivery.objects.filter(alarm_id=alarm_id, event=event))
        return len(rows) == count and all(row.status == "sent" for row in rows)

    wait_until(all_sent, timeout=10)


@pytest.fixture
def life_cycle(client, admin_client, celery_worker, webhook_receiver, webhook_channel,
               alice, make_policy, make_device):  # fmt: skip
    """Live one alarm through: raised over HTTP by a device, its step in the worker emails
    Alice and posts to the webhook (which answers 503 once), ACK (Alice stood down), resolve.
    Scrapes before, after each stage and at the end."""

    def live() -> dict:
        webhook_receiver.statuses = [503]
        policy = make_policy([(0, [alice], [webhook_channel])])
        _, token = make_device("Fridge sensor", kind=Device.Kind.GENERIC, default_policy=policy)
        scrapes = {"before": scrape(client)}
        started = time.monotonic()
        alarm_id = raise_alarm(client, token)
        wait_sent(alarm_id, "notify", 2)
        scrapes["raised"] = scrape(client)
        act(admin_client, alarm_id, "acknowledge")
        wait_sent(alarm_id, "acknowledged", 1)
        wait_sent(alarm_id, "stand_down", 1)  # Alice, paged, need not come
        scrapes["acknowledged"] = scrape(client)
        act(admin_client, alarm_id, "resolve")
        wait_sent(alarm_id, "resolved", 1)
        scrapes["resolved"] = scrape(client)
        scrapes["elapsed"] = time.monotonic() - started
        return scrapes

    return live


def test_an_alarms_life_moves_every_broker_metric_by_what_happened(life_cycle):
    scrapes = life_cycle()
    before, after, elapsed = scrapes["before"], scrapes["resolved"], scrapes["elapsed"]

    assert moved(before, after, "alarmbroker_alarms_raised_total",
                 source="fridge", severity="high") == 1  # fmt: skip
    webhook = {"kind": "webhook", "channel": "Ops webhook"}
    notifications = "alarmbroker_notifications_total"
    assert moved(before, after, notifications, **webhook, outcome="retried") == 1
    # The step's post (after its retry), then the ACK and resolve events.
    assert moved(before, after, notifications, **webhook, outcome="sent") == 3
    assert moved(before, after, notifications, **webhook, outcome="failed") == 0
    email = {"kind": "email", "channel": instruments.MAIL_SETTINGS}
    assert moved(before, after, notifications, **email, outcome="sent") == 2  # page, stand-down

    calls = "alarmbroker_delivery_duration_seconds_count"
    assert moved(before, after, calls, kind="webhook") == 4
    assert moved(before, after, calls, kind="email") == 2
    # Two messages went out, but an alarm has one first notification.
    first = "alarmbroker_first_notification_seconds"
    assert moved(before, after, first + "_count", severity="high") == 1
    assert 0 < moved(before, after, first + "_sum", severity="high") < elapsed
    ack = "alarmbroker_acknowledge_seconds"
    assert moved(before, after, ack + "_count", severity="high") == 1
    assert 0 < moved(before, after, ack + "_sum", severity="high") < elapsed
    lateness = "alarmbroker_escalation_lateness_seconds"
    assert moved(before, after, lateness + "_count", via="queue") == 1
    assert 0 <= moved(before, after, lateness + "_sum", via="queue") < elapsed


def test_open_alarms_follow_the_alarms_status(life_cycle):
    scrapes = life_cycle()
    before = scrapes["before"]

    def open_moved(stage: str) -> tuple:
        after = scrapes[stage]
        return tuple(
            moved(before, after, "alarmbroker_alarms_open", status=status)
            for status in ("triggered", "acknowledged")
        )

    assert open_moved("raised") == (1, 0)
    assert open_moved("acknowledged") == (0, 1)
    assert open_moved("resolved") == (0, 0)
    after = scrapes["resolved"]
    assert ("alarmbroker_celery_queue_length", (("queue", "celery"),)) in after
    assert value(after, "alarmbroker_ready", check="database") == 1
    assert value(after, "alarmbroker_ready", check="redis") == 1
    assert_histograms_are_cumulative(after)


def assert_histograms_are_cumulative(samples: dict) -> None:
    """Each series' buckets never decrease and its +Inf bucket is its count."""
    series = {}
    for (name, labels), count in samples.items():
        if name.startswith("alarmbroker_") and name.endswith("_bucket"):
            le = dict(labels)["le"]
            rest = tuple(item for item in labels if item[0] != "le")
            series.setdefault((name.removesuffix("_bucket"), rest), []).append((float(le), count))
    assert series
    for (name, labels), buckets in series.items():
        counts = [count for _, count in sorted(buckets)]
        assert counts == sorted(counts), name
        assert sorted(buckets)[-1][0] == math.inf
        assert counts[-1] == samples[(name + "_count", labels)], name


def test_with_redis_down_alarms_are_raised_and_metrics_answer_without_the_figures(
    client, settings, caplog, make_device
):
    _, token = make_device("Fridge sensor", kind=Device.Kind.GENERIC)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    with caplog.at_level(logging.WARNING, logger="observability.instruments"):
        raise_alarm(client, token)
        raise_alarm(client, token)
        samples = scrape(client)

    warnings = [r for r in caplog.records if r.name == "observability.instruments"]
    assert len(warnings) == 1, "one warning, then quiet for a while"
    assert "not recorded" in warnings[0].getMessage()
    assert value(samples, "alarmbroker_ready", check="redis") == 0
    assert value(samples, "alarmbroker_ready", check="database") == 1
    assert value(samples, "alarmbroker_alarms_open", status="triggered") >= 2


# --- the dashboard and the alert rules ---------------------------------------------------

DASHBOARD = ROOT / "deploy" / "grafana" / "alarm-broker.json"
RULES = ROOT / "deploy" / "prometheus" / "alarm-broker-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alarm-broker-rules.test.yml"
# Series that Prometheus makes itself for every scrape target.
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}  # fmt: skip


def dashboard_expressions() -> list[str]:
    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                yield node["expr"]
            for child in node.values():
                yield from walk(child)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child)

    return list(walk(json.loads(DASHBOARD.read_text())))


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def metric_names(expression: str) -> set[str]:
    """The series an expression selects: its identifiers, less functions, keywords, label
    names and values, durations and Grafana's variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\$\{?\w+\}?", "", text)  # $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if not following.startswith("(") and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def test_the_expression_parser_finds_series_and_nothing_else():
    expression = (
        "histogram_quantile(0.99, sum by (le, kind) (rate(alarmbroker_delivery_duration_seconds"
        '_bucket{kind=~"web.*"}[$__rate_interval]))) > 2 and on() up{job="x"} == 0'
    )
    assert metric_names(expression) == {"alarmbroker_delivery_duration_seconds_bucket", "up"}


def test_the_dashboard_and_alert_rules_name_only_metrics_the_broker_exposes(life_cycle):
    exposed = {name for name, _ in life_cycle()["resolved"]} | PROMETHEUS_OWN
    dashboard, rules = dashboard_expressions(), rule_expressions()
    assert len(dashboard) >= 8 and len(rules) >= 5

    for expression in dashboard + rules:
        unknown = metric_names(expression) - exposed
        assert not unknown, f"{expression!r} names {sorted(unknown)}, which /metrics lacks"
    named = set().union(*(metric_names(e) for e in dashboard + rules))
    for spec in ("alarms_raised_total", "alarms_open", "notifications_total",
                 "celery_queue_length", "escalation_lateness_seconds_bucket"):  # fmt: skip
        assert f"alarmbroker_{spec}" in named, f"nothing watches alarmbroker_{spec}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_they_fire_as_their_unit_tests_say():
    for command in (["check", "rules", RULES], ["test", "rules", RULE_TESTS]):
        result = subprocess.run(["promtool", *command], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_reopened_alarms_first_message_and_ack_count_from_its_reopening(
    client, admin_client, celery_worker, alice, make_policy, make_device
):
    policy = make_policy([(0, [alice], [])])
    _, token = make_device("Fridge sensor", kind=Device.Kind.GENERIC, default_policy=policy)
    fridge = {"title": "Fridge too warm", "severity": "high", "dedup_key": "fridge-1"}
    alarm_id = raise_over_api(client, token, **fridge)
    wait_sent(alarm_id, "notify", 1)
    act(admin_client, alarm_id, "resolve")
    time.sleep(1.5)  # the reopening comes well after the first raise
    before = scrape(client)

    again = client.post("/v1/alarms/raise", json.dumps(fridge), content_type="application/json",
                        HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert again.json()["alarm_id"] == alarm_id  # fired again: reopened
    wait_sent(alarm_id, "notify", 2)
    act(admin_client, alarm_id, "acknowledge")

    after = scrape(client)
    first, ack = "alarmbroker_first_notification_seconds", "alarmbroker_acknowledge_seconds"
    assert moved(before, after, first + "_count", severity="high") == 1
    assert 0 < moved(before, after, first + "_sum", severity="high") < 1.5
    assert moved(before, after, ack + "_count", severity="high") == 1
    assert 0 < moved(before, after, ack + "_sum", severity="high") < 1.5
