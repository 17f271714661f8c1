"""Every attempt of a delivery on record: the 429 and the 500 before the 200, each with its
time, provider status, latency and answer, on the delivery's admin page; a delivery tried
more often keeps its last ones and counts the older ones."""

import pytest
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.timeline import SYSTEM
from notifications import attempts
from notifications.models import Delivery, DeliveryAttempt, NotificationChannel
from notifications.tests.steps import send

from .fake_provider import Answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(provider):
    provider.route("POST", "/hook", lambda request, match: Answer(200, {"ok": True}))
    return NotificationChannel.objects.create(
        kind="webhook", name="Ops webhook", config={"url": provider.url + "/hook"}
    )


@pytest.fixture
def posted(hook, make_policy) -> Delivery:
    """The webhook message of an alarm's first step, not yet tried."""
    make_policy([(0, [], [hook])], is_default=True)
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="Boiler", actor=SYSTEM).alarm
    engine.run_due_step(alarm.pk)
    return Delivery.objects.get(alarm=alarm)


def tries(row: Delivery) -> list[tuple]:
    return list(row.tries.values_list("number", "outcome", "provider_status"))


def test_each_attempt_is_kept_with_what_came_of_it(provider, posted):
    provider.fail(429, retry_after="1", body="slow down")
    provider.fail(500, body="database is locked")

    for _ in range(3):
        row = send(posted)

    assert row.status == "sent"
    assert tries(row) == [(1, "retried", "HTTP 429"), (2, "retried", "HTTP 500"),
                          (3, "sent", "HTTP 200")]  # fmt: skip
    second = row.tries.get(number=2)
    assert "database is locked" in second.answer
    assert second.latency_ms is not None and second.at <= timezone.now()
    retried = row.alarm.events.filter(kind="delivery_retried").values_list("text", flat=True)
    assert [text.split(":")[0] for text in retried] == [
        "Attempt 1 to reach Ops webhook by webhook (step 1) failed",
        "Attempt 2 to reach Ops webhook by webhook (step 1) failed",
    ]
    assert "HTTP 500" in retried[1] and "trying again in" in retried[1]


def test_a_channel_retried_for_hours_adds_few_lines_to_the_timeline():
    shown = [number for number in range(1, 121) if attempts.on_timeline(number)]

    assert shown[:6] == [1, 2, 3, 4, 5, 10] and len(shown) == 5 + 12


def test_the_delivery_page_lists_its_attempts(admin_client, provider, posted):
    provider.fail(503, body="maintenance")
    send(posted)
    send(posted)

    page = admin_client.get(f"/admin/notifications/delivery/{posted.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "HTTP 503" in html and "maintenance" in html and "HTTP 200" in html
    assert "earlier attempts" in html.lower()


def test_a_delivery_tried_more_often_keeps_its_last_attempts_and_counts_the_rest(
    admin_client, provider, posted, settings, monkeypatch
):
    settings.DELIVERY_MAX_ATTEMPTS = 10
    monkeypatch.setattr(DeliveryAttempt, "KEPT", 3)
    for _ in range(5):
        provider.fail(500)

    for _ in range(6):
        row = send(posted)

    assert row.status == "sent"
    assert [number for number, _, _ in tries(row)] == [4, 5, 6]
    row.refresh_from_db()
    assert row.earlier_attempts["count"] == 3
    assert row.earlier_attempts["outcomes"] == {"HTTP 500": 3}
    page = admin_client.get(f"/admin/notifications/delivery/{posted.pk}/change/").content
    assert "HTTP 500 × 3" in page.decode()
