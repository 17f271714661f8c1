"""A metric sample's time: one far ahead of the server's clock is refused (it would hold its
series' ordering hostage), times no datetime can hold are a 400, and a series that already holds
a future time recovers."""

from datetime import UTC, datetime, timedelta

import pytest

from alarms.models import Alarm, MetricRule, MetricSeries
from alarms.sources import metric_rules
from devices.models import Device

pytestmark = pytest.mark.django_db


@pytest.fixture
def sender(make_device):
    return make_device("Gateway", kind=Device.Kind.METRICS, room=None)[1]


@pytest.fixture
def fridge_warm(db):
    return MetricRule.objects.create(
        name="Fridge warm", metric="fridge_c", operator=">", threshold=8, for_seconds=0
    )


def send(client, token, time, value=9.5, path="/v1/metrics"):
    body = {"name": "fridge_c", "value": value, "labels": {"fridge": "3"}, "time": time}
    if path.endswith("batch"):
        body = {"metrics": [body]}
    return client.post(path, body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip


def test_a_sample_stamped_far_in_the_future_is_refused_saying_so(client, sender, fridge_warm):
    response = send(client, sender, "99999999999")

    assert response.status_code == 400
    assert "ahead of the server's clock" in response.json()["fields"]["time"][0]
    assert not MetricSeries.objects.exists()


def test_a_future_sample_in_a_batch_is_refused_naming_it(client, sender, fridge_warm):
    response = send(client, sender, "99999999999", path="/v1/metrics/batch")

    assert response.status_code == 400
    assert "ahead" in response.json()["fields"]["metrics"]["0"]["time"][0]


def test_a_sample_a_little_ahead_of_the_clock_is_taken(client, sender, fridge_warm):
    soon = datetime.now(UTC) + metric_rules.MAX_AHEAD - timedelta(seconds=30)

    response = send(client, sender, soon.isoformat())

    assert response.status_code == 200
    assert response.json()["changes"][0]["action"] == "raised"


def test_a_series_holding_a_future_time_fires_again(client, sender, fridge_warm):
    """As one stored before such samples were refused: its rule must not stay silent."""
    future = datetime.now(UTC) + timedelta(days=365 * 3000)
    MetricSeries.objects.create(
        rule=fridge_warm, key=metric_rules.series_key({"fridge": "3"}), labels={"fridge": "3"},
        last_value=9.0, last_at=future, holding_since=future, resolved_at=future,
    )  # fmt: skip

    response = send(client, sender, str(datetime.now(UTC).timestamp()))

    assert response.status_code == 200
    (change,) = response.json()["changes"]
    assert change["action"] == "raised" and Alarm.objects.get().status == "triggered"
    assert MetricSeries.objects.get().last_at < datetime.now(UTC) + metric_rules.MAX_AHEAD


@pytest.mark.parametrize(
    "time",
    ["inf", "-inf", "nan", "1e20", "-1e20", 1e20, "2026-11-23T10:00:00+99:00",
     "0001-01-01T00:30:00+01:00", "yesterday"],
)  # fmt: skip
def test_a_time_no_datetime_can_hold_is_a_400_naming_the_field(client, sender, fridge_warm, time):
    response = send(client, sender, time)

    assert response.status_code == 400
    assert "time" in response.json()["fields"]
