"""A ticket and an incident through the whole path on real parts: an alarm raised over HTTP with a
device token, a Celery worker, Zammad and PagerDuty fakes; ACK and resolve through the API as
staff. Each fake must see exactly the calls of the alarm's life, in order."""

import pytest

from conftest import raise_over_api, wait_until
from devices.models import Device
from notifications.models import Delivery, NotificationChannel

from . import fake_provider as fakes
from .test_pagerduty import ROUTING_KEY, FakePagerDuty
from .test_zammad import TOKEN, FakeZammad

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def zammad(provider):
    return FakeZammad(provider)


@pytest.fixture
def pagerduty():
    server = fakes.start()
    yield FakePagerDuty(server)
    fakes.stop(server)


@pytest.fixture
def raise_over_http(client, zammad, pagerduty, make_device, make_policy):
    """POST /v1/alarms/raise from a device whose policy's one step posts to both fakes."""
    helpdesk = NotificationChannel.objects.create(
        kind="zammad", name="Helpdesk",
        config={"url": zammad.url, "token": TOKEN, "customer": "alarms@clinic.example.org"},
    )  # fmt: skip
    incidents = NotificationChannel.objects.create(
        kind="pagerduty", name="PagerDuty Ops",
        config={"routing_key": ROUTING_KEY, "url": pagerduty.url},
    )  # fmt: skip
    policy = make_policy([(0, [], [helpdesk, incidents])])
    _, token = make_device("Fridge sensor", kind=Device.Kind.GENERIC, default_policy=policy)

    def raise_():
        return raise_over_api(
            client, token, dedup_key="fridge-7", title="Fridge too warm", severity="high"
        )

    return raise_


def act(admin_client, alarm_id: str, action: str) -> dict:
    response = admin_client.post(
        f"/v1/alarms/{alarm_id}/{action}", {"note": ""}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def wait_sent(alarm_id: str, event: str) -> None:
    def both_sent():
        """both deliveries of this event are sent"""
        rows = Delivery.objects.filter(alarm_id=alarm_id, event=event)
        return rows.count() == 2 and all(row.status == "sent" for row in rows)

    wait_until(both_sent, timeout=15)


def audit(alarm_id: str) -> list[tuple]:
    rows = Delivery.objects.filter(alarm_id=alarm_id).select_related("channel").order_by("pk")
    return [
        (d.event, d.channel.name, d.status, d.attempts, d.provider_status, d.provider_message_id)
        for d in rows
    ]


def live_through(admin_client, alarm_id: str) -> None:
    """Wait for the step's posts, acknowledge and wait for the notes, resolve and wait."""
    wait_sent(alarm_id, "notify")
    assert act(admin_client, alarm_id, "acknowledge")["status"] == "acknowledged"
    wait_sent(alarm_id, "acknowledged")
    assert act(admin_client, alarm_id, "resolve")["status"] == "resolved"
    wait_sent(alarm_id, "resolved")


def test_a_raised_alarm_opens_notes_and_closes_its_ticket_and_incident(
    celery_worker, raise_over_http, admin_client, zammad, pagerduty
):
    alarm_id = raise_over_http()

    live_through(admin_client, alarm_id)

    assert zammad.calls() == [
        ("POST", "/api/v1/tickets"),
        ("POST", "/api/v1/ticket_articles"),
        ("PUT", "/api/v1/tickets/1"),
    ]
    assert [a["internal"] for a in zammad.articles_of(1)] == [True, True, True]
    assert zammad.articles_of(1)[1]["body"].startswith("Acknowledged by admin.")
    assert zammad.tickets[1]["state"] == "closed"
    assert pagerduty.actions() == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in pagerduty.events()} == {alarm_id}
    assert pagerduty.events()[0]["payload"]["severity"] == "error"
    assert audit(alarm_id) == [
        ("notify", "Helpdesk", "sent", 1, "HTTP 201", "31001"),
        ("notify", "PagerDuty Ops", "sent", 1, "HTTP 202", alarm_id),
        ("acknowledged", "Helpdesk", "sent", 1, "HTTP 201", "2"),
        ("acknowledged", "PagerDuty Ops", "sent", 1, "HTTP 202", alarm_id),
        ("resolved", "Helpdesk", "sent", 1, "HTTP 200", "1"),
        ("resolved", "PagerDuty Ops", "sent", 1, "HTTP 202", alarm_id),
    ]


def test_failures_on_the_way_are_retried_without_doubling_anything(
    celery_worker, raise_over_http, admin_client, zammad, pagerduty
):
    zammad.server.fail(500, body={"error": "Lock wait timeout exceeded"})
    pagerduty.server.fail(429, retry_after="1", body="Too many requests")
    alarm_id = raise_over_http()

    live_through(admin_client, alarm_id)

    assert zammad.calls() == [
        ("POST", "/api/v1/tickets"),
        ("POST", "/api/v1/tickets"),
        ("POST", "/api/v1/ticket_articles"),
        ("PUT", "/api/v1/tickets/1"),
    ]
    assert len(zammad.tickets) == 1
    assert pagerduty.actions() == ["trigger", "trigger", "acknowledge", "resolve"]
    assert audit(alarm_id)[:2] == [
        ("notify", "Helpdesk", "sent", 2, "HTTP 201", "31001"),
        ("notify", "PagerDuty Ops", "sent", 2, "HTTP 202", alarm_id),
    ]
    assert all(row[3] == 1 for row in audit(alarm_id)[2:])
