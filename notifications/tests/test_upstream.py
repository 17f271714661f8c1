"""The upstream channel against a second instance of our own API (pytest-django's live server):
raise and clear travel over real HTTP to /v1/alarms/raise and /v1/alarms/clear, authenticated
with a device token the upstream issued. Both instances share the test database; the upstream's
alarms are the ones keyed by its uplink device."""

import json
import logging

import pytest
from django.utils import timezone

from alarms import lifecycle
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import SYSTEM, Actor
from conftest import free_port
from devices.models import Device
from notifications.delivery import recovery
from notifications.models import Delivery, NotificationChannel
from notifications.tests.steps import run_step, send

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "https://clinic-north.example.org"
DANA = Actor("Dispatcher Dana")


@pytest.fixture(autouse=True)
def _origin(settings):
    settings.PUBLIC_BASE_URL = ORIGIN


@pytest.fixture
def uplink(make_device):
    """The device the upstream issued to this site: (device, token)."""
    return make_device("Uplink Clinic North", kind=Device.Kind.GENERIC, room=None)


@pytest.fixture
def upstream(live_server, uplink):
    return NotificationChannel.objects.create(
        kind="upstream",
        name="Central registry",
        config={"url": live_server.url + "/", "token": uplink[1], "source": "clinic-north"},
    )


@pytest.fixture
def raise_alarm(make_device, make_policy, alice, upstream):
    """Raise a local alarm whose policy posts upstream on step 1 and again on step 2."""
    raised = []

    def raise_(channels=None, labels=None):
        channels = channels or [upstream]
        n = len(raised) + 1
        policy = make_policy([(0, [], channels), (120, [], channels)], name=f"Policy {n}")
        device, _ = make_device(f"Desk phone {n}", person=alice, default_policy=policy)
        raised.append(device)
        return lifecycle.raise_alarm(
            source="yealink", dedup_key=f"device:{device.pk}:emergency", actor=SYSTEM,
            title="Emergency key pressed: Alice", message="Emergency key on the desk phone.",
            severity="high", labels={"floor": "2"} if labels is None else labels, device=device,
        ).alarm  # fmt: skip

    return raise_


def forwarded(alarm) -> Delivery:
    [row] = run_step(alarm)
    return send(row)


def follow_up(alarm, event: str) -> Delivery:
    return send(Delivery.objects.get(alarm=alarm, event=event))


def upstream_alarm(uplink, local) -> Alarm:
    return Alarm.objects.get(dedup_key=f"device:{uplink[0].pk}:{local.pk}")


def test_a_step_raises_the_alarm_upstream_keyed_by_our_alarm_id(raise_alarm, uplink, upstream):
    local = raise_alarm()

    sent = forwarded(local)

    there = upstream_alarm(uplink, local)
    assert there.pk != local.pk
    assert (there.source, there.title, there.message, there.severity, there.status) == (
        "clinic-north", "Emergency key pressed: Alice", "Emergency key on the desk phone.",
        "high", "triggered",
    )  # fmt: skip
    assert there.labels == {
        "floor": "2",
        "site": "Clinic North",
        "room": "Reception",
        "person": "Alice",
        "device": "Desk phone 1",
        "origin": ORIGIN,
    }
    assert there.device == uplink[0]
    assert there.events.first().actor == "device Uplink Clinic North"
    assert (sent.status, sent.provider_status, sent.attempts) == ("sent", "HTTP 201", 1)
    assert sent.provider_message_id == str(there.pk)
    assert json.loads(sent.response) == {
        "alarm_id": str(there.pk), "status": "triggered", "created": True, "occurrences": 1,
    }  # fmt: skip
    local.refresh_from_db()
    assert local.external_refs == {f"channel:{upstream.pk}": {"alarm_id": str(there.pk)}}
    assert not local.ack_links.exists(), "no ACK link goes upstream"


def test_a_later_step_does_not_raise_a_second_upstream_alarm(raise_alarm, uplink):
    local = raise_alarm()
    forwarded(local)

    [step2] = run_step(local)
    step2 = send(step2)

    there = upstream_alarm(uplink, local)
    assert Alarm.objects.filter(device=uplink[0]).count() == 1
    assert there.occurrences == 1
    assert (step2.status, step2.provider_status) == ("sent", "forwarded before")
    assert step2.provider_message_id == str(there.pk)


def test_a_raise_sent_again_lands_on_the_same_upstream_alarm(raise_alarm, uplink):
    local = raise_alarm()
    first = forwarded(local)
    # The worker died after the upstream accepted, before the row was marked sent: its lease
    # runs out and the raise goes again.
    Delivery.objects.filter(pk=first.pk).update(status="sending", next_attempt_at=timezone.now())
    Alarm.objects.filter(pk=local.pk).update(external_refs={})

    again = send(first)

    there = upstream_alarm(uplink, local)
    assert Alarm.objects.filter(device=uplink[0]).count() == 1
    assert there.occurrences == 2
    assert (again.status, again.attempts, again.provider_status) == ("sent", 2, "HTTP 200")
    assert again.provider_message_id == str(there.pk)


def test_resolving_here_clears_it_upstream(raise_alarm, uplink):
    local = raise_alarm()
    forwarded(local)

    lifecycle.resolve(local.pk, DANA)
    cleared = follow_up(local, "resolved")

    there = upstream_alarm(uplink, local)
    assert there.status == "resolved"
    assert there.resolved_by == "device Uplink Clinic North"
    assert there.events.get(kind="resolved").text == f"resolved by Dispatcher Dana at {ORIGIN}"
    assert (cleared.status, cleared.provider_status) == ("sent", "HTTP 200")
    assert cleared.provider_message_id == str(there.pk)


def test_cancelling_here_clears_it_upstream_too(raise_alarm, uplink):
    local = raise_alarm()
    forwarded(local)

    lifecycle.cancel(local.pk, DANA, note="false alarm")
    assert follow_up(local, "cancelled").status == "sent"

    there = upstream_alarm(uplink, local)
    assert there.status == "resolved"
    assert there.events.get(kind="resolved").text == f"cancelled by Dispatcher Dana at {ORIGIN}"


def test_an_ack_here_is_not_forwarded(raise_alarm, uplink):
    local = raise_alarm()
    forwarded(local)

    lifecycle.acknowledge(local.pk, DANA)

    assert not Delivery.objects.filter(alarm=local, event="acknowledged").exists()
    assert upstream_alarm(uplink, local).status == "triggered"


def test_an_alarm_already_closed_upstream_is_not_an_error(raise_alarm, uplink):
    local = raise_alarm()
    forwarded(local)
    lifecycle.resolve(upstream_alarm(uplink, local).pk, Actor("Central dispatch"))

    lifecycle.resolve(local.pk, DANA)
    cleared = follow_up(local, "resolved")

    assert (cleared.status, cleared.provider_status) == ("sent", "HTTP 404")
    assert cleared.response == "already closed upstream"
    assert not local.events.filter(kind="delivery_failed").exists()


# --- failures -------------------------------------------------------------------------------


def test_a_token_the_upstream_does_not_know_fails_for_good(raise_alarm, upstream):
    upstream.config["token"] = "revoked-" + upstream.config["token"]
    upstream.save()
    local = raise_alarm()

    failed = forwarded(local)

    assert (failed.status, failed.attempts, failed.provider_status) == ("failed", 1, "HTTP 401")
    assert "Unknown, revoked or disabled token." in failed.error
    assert failed.next_attempt_at is None
    assert Alarm.objects.count() == 1, "nothing was raised upstream"
    assert "after a permanent error" in local.events.get(kind="delivery_failed").text


def test_a_disabled_uplink_fails_for_good(raise_alarm, uplink):
    Device.objects.filter(pk=uplink[0].pk).update(enabled=False)
    local = raise_alarm()

    assert forwarded(local).provider_status == "HTTP 401"


def test_an_upstream_that_is_down_is_retried(raise_alarm, upstream, uplink, live_server):
    upstream.config["url"] = f"http://127.0.0.1:{free_port()}"
    upstream.save()
    local = raise_alarm()

    first = forwarded(local)

    assert (first.status, first.attempts, first.provider_status) == ("pending", 1, "")
    assert first.error.startswith("connection failed: ConnectionError")
    assert 4 < (first.next_attempt_at - timezone.now()).total_seconds() <= 10

    upstream.config["url"] = live_server.url
    upstream.save()
    assert send(first).status == "sent"
    assert upstream_alarm(uplink, local).status == "triggered"


def point_at(upstream, url: str) -> None:
    upstream.config["url"] = url
    upstream.save()


def test_an_upstream_that_stays_down_is_tried_for_as_long_as_it_takes_never_given_up(
    raise_alarm, upstream, uplink, live_server, settings
):
    point_at(upstream, f"http://127.0.0.1:{free_port()}")
    local = raise_alarm()
    row = forwarded(local)

    for _ in range(settings.DELIVERY_MAX_ATTEMPTS + 3):
        row = send(row)

    assert (row.status, row.attempts) == ("pending", settings.DELIVERY_MAX_ATTEMPTS + 4)
    wait = (row.next_attempt_at - timezone.now()).total_seconds()
    assert wait <= settings.OUTBOX_RETRY_MAX_SECONDS, "the backoff stops growing at a minute"
    assert not local.events.filter(kind="delivery_failed").exists()
    point_at(upstream, live_server.url)
    assert send(row).status == "sent"
    assert upstream_alarm(uplink, local).status == "triggered"


def test_a_resolve_while_the_upstream_is_down_follows_the_raise_once_it_is_back(
    raise_alarm, upstream, uplink, live_server
):
    point_at(upstream, f"http://127.0.0.1:{free_port()}")
    local = raise_alarm()
    raised = forwarded(local)
    lifecycle.resolve(local.pk, DANA)
    clear = Delivery.objects.get(alarm=local, event="resolved")
    assert send(clear).status == "pending", "the clear waits for the raise ahead of it"
    point_at(upstream, live_server.url)

    assert send(raised).status == "sent"
    assert send(clear).status == "sent"

    assert upstream_alarm(uplink, local).status == "resolved"


def test_once_the_upstream_answers_again_every_message_waiting_for_it_goes(
    raise_alarm, upstream, uplink, live_server, settings
):
    point_at(upstream, f"http://127.0.0.1:{free_port()}")
    waiting = [forwarded(raise_alarm()) for _ in range(3)]
    # Each waits out a backoff longer than the probe's period, whatever the first one drew.
    now = timezone.now()
    Delivery.objects.filter(pk__in=[row.pk for row in waiting]).update(
        updated_at=now - timezone.timedelta(seconds=settings.OUTBOX_PROBE_SECONDS + 1),
        next_attempt_at=now + timezone.timedelta(seconds=settings.OUTBOX_RETRY_MAX_SECONDS),
    )
    point_at(upstream, live_server.url)

    assert recovery.probe_outboxes() == 1  # its oldest message, now
    oldest = Delivery.objects.get(pk=waiting[0].pk)
    assert oldest.next_attempt_at <= timezone.now()
    assert recovery.probe_outboxes() == 0, "one probe at a time"
    send(oldest)  # the upstream takes it: the others are brought forward

    others = Delivery.objects.filter(pk__in=[row.pk for row in waiting[1:]])
    assert all(row.next_attempt_at <= timezone.now() for row in others)
    assert [send(row).status for row in others] == ["sent", "sent"]


def test_the_upstreams_rate_limit_is_retried_after_its_retry_after(raise_alarm, uplink):
    # Over its limit from the first request: no minute boundary can make this test flaky.
    Device.objects.filter(pk=uplink[0].pk).update(rate_limit_per_minute=0)

    limited = forwarded(raise_alarm())

    assert (limited.status, limited.provider_status) == ("pending", "HTTP 429")
    assert 59 < (limited.next_attempt_at - timezone.now()).total_seconds() <= 61
    assert "rate limit exceeded" in limited.error


def test_an_alarm_with_the_most_labels_allowed_still_reaches_the_upstream(raise_alarm, uplink):
    local = raise_alarm(labels={f"label{i}": "x" for i in range(64)})

    sent = forwarded(local)
    assert (sent.status, sent.error) == ("sent", "")


# --- secrets -----------------------------------------------------------------------------------


def test_the_token_is_never_written_down(raise_alarm, upstream, uplink, caplog):
    caplog.set_level(logging.DEBUG)
    token = uplink[1]
    local = raise_alarm()
    forwarded(local)
    forwarded(local)
    lifecycle.resolve(local.pk, DANA)
    follow_up(local, "resolved")
    down = NotificationChannel.objects.create(
        kind="upstream", name="Central registry (down)",
        config={"url": f"http://127.0.0.1:{free_port()}", "token": token},
    )  # fmt: skip
    refused = NotificationChannel.objects.create(
        kind="upstream", name="Central registry (old token)",
        config={"url": upstream.config["url"], "token": token[:-2] + "xx"},
    )  # fmt: skip
    rows = {row.channel.name: send(row) for row in run_step(raise_alarm([down, refused]))}

    assert rows["Central registry (down)"].status == "pending"
    assert rows["Central registry (old token)"].status == "failed"
    secrets = [token, token[:-2] + "xx"]
    stored = json.dumps(
        [list(Delivery.objects.values()), list(AlarmEvent.objects.values()),
         list(Alarm.objects.values_list("external_refs", flat=True))],
        default=str,
    )  # fmt: skip
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "127.0.0.1" in logged, "HTTP calls were logged at DEBUG"
    for secret in secrets:
        assert secret not in stored
        assert secret not in logged
