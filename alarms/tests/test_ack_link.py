"""ACK links: GET shows the alarm and a button, POST acknowledges as the link's recipient."""

import re

import pytest
from django.test import Client
from django.utils.html import escape

from alarms import engine, lifecycle
from alarms.acklinks import issue_ack_link
from alarms.models import AckLink, Alarm
from alarms.timeline import SYSTEM
from core.tokens import hash_token
from notifications.delivery import sending
from notifications.models import Delivery

pytestmark = pytest.mark.django_db

ACK_PATH = re.compile(r"https?://[^/\s]+(/a/([A-Za-z0-9_\-]+))")


@pytest.fixture
def make_alarm(make_device, make_policy, alice, bob):
    """An alarm raised by a desk phone whose policy notifies Alice now and Bob later."""

    def make(title="Emergency key pressed: Reception"):
        policy = make_policy([(0, [alice], []), (60, [bob], [])])
        device, _ = make_device(default_policy=policy)
        return lifecycle.raise_alarm(
            source="yealink", dedup_key="reception", title=title, device=device, actor=SYSTEM
        ).alarm

    return make


@pytest.fixture
def alarm(make_alarm):
    return make_alarm()


def link_for(alarm, person) -> str:
    """The path of a fresh ACK link, as the recipient's message would carry it."""
    return ACK_PATH.match(issue_ack_link(alarm, person)).group(1)


def fresh(alarm) -> Alarm:
    return Alarm.objects.get(pk=alarm.pk)


def test_opening_the_link_shows_the_alarm_and_a_button_without_acknowledging(client, alarm, alice):
    response = client.get(link_for(alarm, alice))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Emergency key pressed: Reception" in page
    assert "Clinic North" in page
    assert '<button type="submit" name="action" value="acknowledge">Acknowledge</button>' in page
    assert 'method="post"' in page
    assert fresh(alarm).status == "triggered"
    assert fresh(alarm).next_escalation_at is not None


def test_opening_the_link_is_logged_against_the_recipient(client, alarm, alice):
    client.get(link_for(alarm, alice), REMOTE_ADDR="192.0.2.7")

    event = alarm.events.get(kind="ack_link_opened")
    assert event.person == alice
    assert event.actor == "Alice (ACK link)"
    assert event.source_ip == "192.0.2.7"


def test_posting_the_link_acknowledges_as_its_recipient(client, alarm, alice):
    response = client.post(link_for(alarm, alice))

    assert response.status_code == 200
    assert "Acknowledged by you" in response.content.decode()
    alarm = fresh(alarm)
    assert alarm.status == "acknowledged"
    assert alarm.acknowledged_by == "Alice (ACK link)"
    assert alarm.events.get(kind="acknowledged").person == alice


def test_acknowledging_by_link_stops_the_escalation(client, alarm, alice):
    assert fresh(alarm).next_escalation_at is not None

    client.post(link_for(alarm, alice))

    alarm = fresh(alarm)
    assert alarm.next_escalation_at is None
    assert alarm.escalation_token is None
    assert engine.run_due_step(alarm.pk) is False


def test_a_second_ack_by_another_recipient_says_who_was_first_and_changes_nothing(
    client, alarm, alice, bob
):
    client.post(link_for(alarm, alice))
    acknowledged_at = fresh(alarm).acknowledged_at

    response = client.post(link_for(alarm, bob))

    assert response.status_code == 200
    assert "Already acknowledged by Alice (ACK link)" in response.content.decode()
    alarm = fresh(alarm)
    assert (alarm.acknowledged_by, alarm.acknowledged_at) == ("Alice (ACK link)", acknowledged_at)
    assert alarm.events.filter(kind="acknowledged").count() == 1


def test_the_same_link_posted_twice_acknowledges_once(client, alarm, alice):
    path = link_for(alarm, alice)
    client.post(path)

    response = client.post(path)

    assert "Already acknowledged by Alice (ACK link)" in response.content.decode()
    assert alarm.events.filter(kind="acknowledged").count() == 1


def test_posting_after_the_alarm_was_resolved_is_410_and_changes_nothing(client, alarm, alice):
    path = link_for(alarm, alice)
    lifecycle.resolve(alarm.pk, SYSTEM)

    response = client.post(path)

    assert response.status_code == 410
    assert "This alarm is resolved" in response.content.decode()
    assert "<button" not in response.content.decode()
    alarm = fresh(alarm)
    assert alarm.status == "resolved"
    assert alarm.acknowledged_at is None
    assert not alarm.events.filter(kind="acknowledged").exists()


def test_opening_the_link_of_a_resolved_alarm_shows_no_button(client, alarm, alice):
    path = link_for(alarm, alice)
    lifecycle.resolve(alarm.pk, SYSTEM)

    response = client.get(path)

    assert "This alarm is resolved" in response.content.decode()
    assert "<button" not in response.content.decode()


@pytest.mark.parametrize("path", ["/a/wrong-token", "/a/" + "x" * 300, "/a/%00%ff'%22<>"])
def test_an_unknown_link_is_a_readable_404_page(client, alarm, alice, path):
    issue_ack_link(alarm, alice)

    response = client.post(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "This link is not valid" in response.content.decode()
    assert fresh(alarm).status == "triggered"


@pytest.mark.parametrize("title", ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">'])
def test_html_in_the_alarm_title_is_escaped_on_the_page(client, make_alarm, alice, title):
    alarm = make_alarm(title=title)

    page = client.get(link_for(alarm, alice)).content.decode()

    assert title not in page
    assert escape(title) in page


def test_the_link_token_is_stored_only_as_its_hash(alarm, alice):
    token = ACK_PATH.match(issue_ack_link(alarm, alice)).group(2)

    link = AckLink.objects.get()
    assert link.token_hash == hash_token(token)
    stored = [str(value) for value in AckLink.objects.values().get().values()]
    assert not any(token in value for value in stored)


def test_the_link_works_with_csrf_checks_as_a_browser_sends_them(alarm, alice):
    browser = Client(enforce_csrf_checks=True)
    path = link_for(alarm, alice)
    form = browser.get(path).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)

    response = browser.post(path, {"csrfmiddlewaretoken": csrf})

    assert response.status_code == 200
    assert fresh(alarm).status == "acknowledged"


def test_the_link_in_a_sent_email_acknowledges_and_is_not_kept_on_the_delivery(
    client, alarm, alice, smtp_server
):
    engine.run_due_step(alarm.pk)
    sent = Delivery.objects.get(alarm=alarm, person=alice)
    assert sending.attempt(sent.pk) == "sent"
    mail = smtp_server.bodies()[0]
    path, token = ACK_PATH.search(mail).groups()

    assert client.post(path).status_code == 200

    assert fresh(alarm).acknowledged_by == "Alice (ACK link)"
    sent.refresh_from_db()
    assert token not in sent.message
    assert AckLink.objects.get(alarm=alarm, person=alice).token_hash == hash_token(token)
