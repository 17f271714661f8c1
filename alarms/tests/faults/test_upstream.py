"""The central broker away while alarms stream in: every alarm raised (and resolved) here while
the upstream is down is on it within seconds of its return, each once, its clear after its
raise. Forwarding is an outbox: it never gives up while the alarm exists."""

import time

import pytest
import requests

from devices.models import Device
from notifications.models import NotificationChannel

from .checks import settle, tally
from .sinks import UpstreamSink
from .traffic import Stream, accepted, burst

pytestmark = pytest.mark.postgres

# Once the upstream answers again, everything waiting must be on it within this long.
CAUGHT_UP_WITHIN = 30.0


@pytest.fixture
def upstream_sink():
    sink = UpstreamSink()
    yield sink
    sink.close()


@pytest.fixture
def forwarding(make_policy, make_device, upstream_sink):
    """A device token whose alarms are forwarded to the upstream sink by their one step."""
    channel = NotificationChannel.objects.create(
        kind="upstream", name="Central registry",
        config={"url": upstream_sink.base, "token": "site-token-issued-upstream"},
    )  # fmt: skip
    policy = make_policy([(0, [], [channel])], name="Forward to the registry")
    _, token = make_device(
        "Fault scenario device", kind=Device.Kind.GENERIC, default_policy=policy,
        rate_limit_per_minute=1_000_000,
    )  # fmt: skip
    return token


def _resolve(base_url: str, token: str, alarm_id: str) -> None:
    answer = requests.post(
        f"{base_url}/v1/alarms/{alarm_id}/resolve",
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "outage",
    [pytest.param(20, id="20 s"), pytest.param(300, id="5 minutes", marks=pytest.mark.faults)],
)
def test_alarms_raised_while_the_upstream_is_down_are_on_it_soon_after_it_returns(
    stack, upstream_sink, forwarding, report, outage
):
    stack.start()
    before = accepted(burst(stack.url, forwarding, 10))
    settle(before, [upstream_sink], timeout=30)

    upstream_sink.stop()
    stream = Stream(stack.url, forwarding, per_second=1).start()
    for alarm_id in before[:5]:  # resolved while it is away: the clear must follow
        _resolve(stack.url, forwarding, alarm_id)
    time.sleep(outage / 2)
    during = accepted(stream.stop())
    for alarm_id in during[: len(during) // 2]:
        _resolve(stack.url, forwarding, alarm_id)
    time.sleep(outage / 2)
    upstream_sink.start()
    back = time.monotonic()
    caught_up = settle(before + during, [upstream_sink], timeout=CAUGHT_UP_WITHIN + 30)
    took = time.monotonic() - back

    result = tally(before + during, [upstream_sink], steps_each=1)
    out_of_order = [key for key, events in upstream_sink.order.items() if events[0] != "notify"]
    again = upstream_sink.received_again()
    result.counts.update({
        "raised while away": len(during),
        "resolved while away": 5 + len(during) // 2,
        "on the upstream after its return": f"{took:.1f} s",
        "clear before raise": len(out_of_order),
        "received twice": len(again),
    })  # fmt: skip
    if not caught_up or took > CAUGHT_UP_WITHIN:
        result.problems.append(f"the upstream was not caught up {CAUGHT_UP_WITHIN:.0f} s after")
    if out_of_order:
        result.problems.append(f"{len(out_of_order)} alarms cleared upstream before raised")
    if again:
        result.problems.append(f"{len(again)} messages reached the upstream twice")
    report(f"upstream broker away for {outage} s during a stream", result)
