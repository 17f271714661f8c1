import pytest

from alarms import engine, lifecycle
from alarms.timeline import SYSTEM

from . import fake_provider as fakes


@pytest.fixture
def provider():
    """A fresh fake provider server; the test module adds the routes its API has."""
    server = fakes.start()
    yield server
    fakes.stop(server)


@pytest.fixture
def raise_alarm(make_policy, make_device):
    """Raise an alarm whose policy's one step reaches these people by these methods and posts
    to these channels, and run that step; return the alarm."""

    def start(persons=(), channels=(), methods=("sms",), title="Emergency key pressed",
              dedup_key="desk-1", **fields):  # fmt: skip
        policy = make_policy([(0, list(persons), list(channels))], name=f"Policy {dedup_key}")
        policy.steps.update(methods=list(methods))
        device, _ = make_device(f"Device {dedup_key}", default_policy=policy)
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key=dedup_key, title=title, device=device, actor=SYSTEM,
            **fields,
        ).alarm  # fmt: skip
        assert engine.run_due_step(alarm.pk)
        return alarm

    return start
