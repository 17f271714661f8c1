"""The whole alarm path on real parts: HTTP ingest, a Celery worker, an SMTP server, a webhook
receiver, the ACK link from the email."""

import email
import email.policy
import re
import time

import pytest

from alarms import lifecycle
from alarms.models import Alarm
from alarms.timeline import SYSTEM
from conftest import wait_until
from notifications.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)

ACK_LINK = re.compile(r"https?://[^/\s]+(/a/[A-Za-z0-9_\-]+)")


def ack_path(mail: str) -> str:
    return ACK_LINK.search(mail).group(1)


def mails_to(smtp_server, address):
    return [m.content.decode() for m in smtp_server.messages if address in m.rcpt_tos]


def stand_downs(mails):
    return [m for m in mails if "\nStand down: " in m]


def pages(mails):
    return [m for m in mails if "\nStand down: " not in m]


def test_a_desk_phone_press_notifies_escalates_and_stops_at_the_ack(
    client, celery_worker, smtp_server, webhook_receiver, webhook_channel,
    make_person, make_policy, make_device,
):  # fmt: skip
    alice, bob = make_person("Alice"), make_person("Bob")
    policy = make_policy(
        [(0, [alice], [webhook_channel]), (2, [bob], [])], repeat_count=1, repeat_after_seconds=2
    )
    _, token = make_device(person=alice, default_policy=policy)

    started = time.monotonic()
    response = client.get("/v1/yealink/alarm", {"token": token})
    assert response.status_code == 200
    alarm_id = response.json()["alarm_id"]
    assert response.json()["status"] == "triggered"

    wait_until(lambda: mails_to(smtp_server, "alice@example.org"))
    wait_until(lambda: webhook_receiver.requests)
    hook = webhook_receiver.requests[0]["json"]
    assert hook["alarm"]["id"] == alarm_id
    assert hook["alarm"]["room"] == "Reception"

    bob_mail = wait_until(lambda: mails_to(smtp_server, "bob@example.org"))[0]
    assert time.monotonic() - started >= 2, "step 2 fired before its delay"
    assert "Emergency key pressed" in bob_mail

    link = ack_path(bob_mail)
    assert client.get(link).status_code == 200
    assert Alarm.objects.get(pk=alarm_id).status == "triggered", "GET must not acknowledge"
    page = client.post(link)
    assert page.status_code == 200
    assert b"Acknowledged by you" in page.content

    alarm = Alarm.objects.get(pk=alarm_id)
    assert alarm.status == "acknowledged"
    assert alarm.acknowledged_by == "Bob (ACK link)"
    assert alarm.next_escalation_at is None

    # Alice, whom step 1 paged, is told once that she need not come; Bob, who acted, is not.
    stood_down = wait_until(lambda: stand_downs(mails_to(smtp_server, "alice@example.org")))
    assert len(stood_down) == 1 and "acknowledged by Bob at" in stood_down[0]
    mails_before = len(smtp_server.messages)
    time.sleep(3)  # the repeat round would have started by now
    assert len(smtp_server.messages) == mails_before
    assert not stand_downs(mails_to(smtp_server, "bob@example.org"))
    assert Delivery.objects.filter(alarm=alarm, event="notify", status="sent").count() == 3
    # The webhook channel that step 1 posted to hears about the ACK.
    told = wait_until(lambda: Delivery.objects.filter(alarm=alarm, event="acknowledged").first())
    assert (told.channel, told.status) == (webhook_channel, "sent")
    follow_up = webhook_receiver.requests[-1]["json"]
    assert follow_up["event"] == "alarm.acknowledged"
    assert follow_up["alarm"]["acknowledged_by"] == "Bob (ACK link)"
    kinds = list(alarm.events.values_list("kind", flat=True))
    assert kinds[:3] == ["triggered", "routed", "step_notified"]
    for kind in ["delivery_sent", "ack_link_opened", "acknowledged"]:
        assert kind in kinds
    assert kinds.count("step_notified") == 2
    assert kinds.index("acknowledged") > kinds.index("ack_link_opened")


def test_a_press_after_a_resolve_reaches_a_human_again(
    client, celery_worker, smtp_server, make_person, make_policy, make_device
):  # the quick start: press, resolve, press again within the flap window
    alice = make_person("Alice")
    policy = make_policy([(0, [alice], [])])
    _, token = make_device(person=alice, default_policy=policy)
    alarm_id = client.get("/v1/yealink/alarm", {"token": token}).json()["alarm_id"]
    wait_until(lambda: mails_to(smtp_server, "alice@example.org"))
    page = client.post(ack_path(mails_to(smtp_server, "alice@example.org")[0]))
    assert page.status_code == 200
    lifecycle.resolve(alarm_id, SYSTEM)

    again = client.get("/v1/yealink/alarm", {"token": token})

    assert again.json()["alarm_id"] == alarm_id and again.json()["status"] == "triggered"
    # Her stand-down after the resolve, then the page of the new cycle.
    mails = wait_until(lambda: pages(mails_to(smtp_server, "alice@example.org"))[1:])
    mail = email.message_from_string(mails[0], policy=email.policy.default)
    assert mail["subject"].strip().startswith("Fired again: [CRITICAL]")
    assert "FIRED AGAIN after it was resolved" in mail.get_body(("plain",)).get_content()
    assert client.post(ack_path(mails[0])).status_code == 200
    assert Alarm.objects.get(pk=alarm_id).acknowledged_by == "Alice (ACK link)"
