"""Zammad tickets against a local server that speaks Zammad's REST API and keeps its tickets,
so a test reads the ticket's life: opened by the first step, noted by later steps and the ACK,
closed by resolve or cancel, and never opened twice."""

import json
import logging
import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import AckLink, Alarm, AlarmEvent
from alarms.timeline import SYSTEM, Actor
from conftest import free_port
from notifications.delivery import sending
from notifications.models import Delivery, NotificationChannel
from notifications.tests.steps import drain, send

from .fake_provider import Answer

pytestmark = pytest.mark.django_db

TOKEN = "zmd-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
DANA = Actor("Dispatcher Dana")


class FakeZammad:
    """Zammad's ticket API: token auth, tickets with articles, states by name."""

    STATES = {"new": 1, "open": 2, "pending reminder": 3, "closed": 4, "merged": 5}
    GROUPS = {"Users": 1, "Alarms": 2}
    ARTICLE_TYPES = ("note", "email", "phone", "web")

    def __init__(self, server, token=TOKEN):
        self.server, self.url, self.token = server, server.url, token
        self.tickets: dict[int, dict] = {}
        self.articles: list[dict] = []
        self.lock = threading.Lock()
        self.gate = None  # a threading.Event that holds ticket creation until it is set
        self.creating = threading.Event()  # set when a held creation has arrived
        self.held_answer = None  # what a held creation answers instead of creating the ticket
        server.route("POST", "/api/v1/tickets", self._authed(self.create_ticket))
        server.route("POST", "/api/v1/ticket_articles", self._authed(self.add_article))
        server.route("PUT", r"/api/v1/tickets/(\d+)", self._authed(self.update_ticket))

    def _authed(self, handler):
        def check(request, match):
            if request.headers.get("authorization") != f"Token token={self.token}":
                return Answer(401, {"error": "Authentication required"})
            try:
                body = request.json
            except ValueError:
                return Answer(422, {"error": "Unable to parse JSON body"})
            return handler(body, match)

        return check

    def hold_creation(self) -> threading.Event:
        self.gate = threading.Event()
        return self.gate

    def _article_error(self, article) -> str:
        if not isinstance(article, dict):
            return "article is required"
        if not isinstance(article.get("body"), str) or not article["body"].strip():
            return "Need at least an article body"
        if article.get("type") not in self.ARTICLE_TYPES:
            return f"Unknown article type {article.get('type')!r}"
        if not isinstance(article.get("internal"), bool):
            return "internal must be true or false"
        if article.get("content_type") not in ("text/plain", "text/html"):
            return "Unknown content_type"
        if not isinstance(article.get("subject", ""), str):
            return "subject must be a string"
        return ""

    def _store_article(self, ticket_id: int, article: dict) -> dict:
        stored = {
            "id": len(self.articles) + 1,
            "ticket_id": ticket_id,
            "type": article["type"],
            "sender": "Agent",
            "internal": article["internal"],
            "subject": article.get("subject", ""),
            "body": article["body"],
            "content_type": article["content_type"],
            "created_at": timezone.now().isoformat(),
        }
        self.articles.append(stored)
        self.tickets[ticket_id]["article_ids"].append(stored["id"])
        return stored

    def _shown(self, ticket: dict) -> dict:
        shown = {k: v for k, v in ticket.items() if k not in ("state", "group", "customer")}
        return shown | {"state_id": self.STATES[ticket["state"]]}

    def create_ticket(self, body, match):
        if self.gate is not None:
            self.creating.set()
            self.gate.wait(10)
            if self.held_answer:
                held, self.gate, self.held_answer = self.held_answer, None, None
                return held
        for key in ("title", "customer"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                return Answer(422, {"error": f"Missing required attribute: {key}"})
        if body.get("group") not in self.GROUPS:
            return Answer(422, {"error": f"No lookup value found for 'group': {body.get('group')}"})
        if error := self._article_error(body.get("article")):
            return Answer(422, {"error": error})
        with self.lock:
            ticket_id = len(self.tickets) + 1
            self.tickets[ticket_id] = {
                "id": ticket_id,
                "number": str(31000 + ticket_id),
                "title": body["title"],
                "group": body["group"],
                "group_id": self.GROUPS[body["group"]],
                "customer": body["customer"],
                "state": "new",
                "article_ids": [],
                "created_at": timezone.now().isoformat(),
            }
            self._store_article(ticket_id, body["article"])
            return Answer(201, self._shown(self.tickets[ticket_id]))

    def add_article(self, body, match):
        ticket_id = body.get("ticket_id")
        if ticket_id not in self.tickets:
            return Answer(422, {"error": f"Couldn't find Ticket with 'id'={ticket_id}"})
        if error := self._article_error(body):
            return Answer(422, {"error": error})
        with self.lock:
            return Answer(201, self._store_article(ticket_id, body))

    def update_ticket(self, body, match):
        ticket_id = int(match.group(1))
        if ticket_id not in self.tickets:
            return Answer(404, {"error": f"Couldn't find Ticket with 'id'={ticket_id}"})
        if "state" in body and body["state"] not in self.STATES:
            return Answer(422, {"error": f"No lookup value found for 'state': {body['state']}"})
        if "article" in body and (error := self._article_error(body["article"])):
            return Answer(422, {"error": error})
        with self.lock:
            ticket = self.tickets[ticket_id]
            ticket["state"] = body.get("state", ticket["state"])
            if "article" in body:
                self._store_article(ticket_id, body["article"])
            return Answer(200, self._shown(ticket))

    def articles_of(self, ticket_id: int) -> list[dict]:
        return [a for a in self.articles if a["ticket_id"] == ticket_id]

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.server.requests]


@pytest.fixture
def zammad(provider):
    return FakeZammad(provider)


@pytest.fixture
def helpdesk(zammad):
    return NotificationChannel.objects.create(
        kind="zammad",
        name="Helpdesk",
        config={
            "url": zammad.url + "/",
            "token": TOKEN,
            "group": "Alarms",
            "customer": "alarms@clinic.example.org",
        },
    )


@pytest.fixture
def raise_alarm(make_device, make_policy, helpdesk):
    """Raise an alarm whose policy posts to the helpdesk on step 1 and again on step 2, or
    to the given channels on one step."""
    raised = []

    def raise_(channels=None):
        steps = [(0, [], channels)] if channels else [(0, [], [helpdesk]), (120, [], [helpdesk])]
        n = len(raised) + 1
        policy = make_policy(steps, name=f"Policy {n}")
        device, _ = make_device(f"Fridge sensor {n}", default_policy=policy)
        raised.append(device)
        return lifecycle.raise_alarm(
            source="api", dedup_key=f"fridge-{n}", title="Fridge too warm", actor=SYSTEM,
            message="Vaccine fridge at 11.2 °C.", device=device,
        ).alarm  # fmt: skip

    return raise_


def run_step(alarm) -> Delivery:
    """Run the alarm's next step now and return its delivery to the helpdesk."""
    Alarm.objects.filter(pk=alarm.pk).update(next_escalation_at=timezone.now())
    assert engine.run_due_step(alarm.pk)
    alarm.refresh_from_db()
    return Delivery.objects.get(alarm=alarm, event="notify", step=alarm.current_step)


def follow_up(alarm, event: str) -> Delivery:
    return Delivery.objects.get(alarm=alarm, event=event)


def opened_ticket(alarm) -> Delivery:
    """Raise-and-send: the alarm's first step opened ticket 1."""
    return send(run_step(alarm))


# --- the ticket's life --------------------------------------------------------------------


def test_the_first_step_opens_a_ticket_and_remembers_its_id(raise_alarm, zammad, helpdesk):
    alarm = raise_alarm()

    sent = opened_ticket(alarm)

    assert zammad.calls() == [("POST", "/api/v1/tickets")]
    ticket = zammad.tickets[1]
    assert ticket["title"] == "[CRITICAL] Fridge too warm — Clinic North / Reception"
    assert (ticket["group"], ticket["customer"], ticket["state"]) == (
        "Alarms", "alarms@clinic.example.org", "new",
    )  # fmt: skip
    [article] = zammad.articles_of(1)
    assert (article["type"], article["internal"], article["content_type"]) == (
        "note", True, "text/plain",
    )  # fmt: skip
    assert article["subject"] == ticket["title"]
    assert "ALARM: Fridge too warm" in article["body"]
    assert "Vaccine fridge at 11.2 °C." in article["body"]
    assert "/a/" in article["body"], "the agents reading the internal note can acknowledge"
    assert f"Alarm {alarm.pk}" in article["body"]

    assert sent.status == "sent"
    assert (sent.provider_status, sent.provider_message_id) == ("HTTP 201", "31001")
    assert sent.attempts == 1 and sent.error == ""
    assert sent.latency_ms is not None and sent.sent_at is not None
    assert json.loads(sent.response)["number"] == "31001"
    alarm.refresh_from_db()
    assert alarm.external_refs == {
        f"channel:{helpdesk.pk}": {"ticket_id": 1, "ticket_number": "31001"}
    }
    assert "Sent to Helpdesk by zammad" in alarm.events.get(kind="delivery_sent").text


def test_a_later_step_notes_the_same_ticket_internally(raise_alarm, zammad):
    alarm = raise_alarm()
    opened_ticket(alarm)

    step2 = send(run_step(alarm))

    assert zammad.calls() == [("POST", "/api/v1/tickets"), ("POST", "/api/v1/ticket_articles")]
    assert len(zammad.tickets) == 1
    note = zammad.articles_of(1)[1]
    assert (note["type"], note["internal"]) == ("note", True)
    assert note["subject"].startswith("Escalated: [CRITICAL] Fridge too warm")
    assert "Escalation: step 2 of 2" in note["body"]
    assert (step2.status, step2.provider_status) == ("sent", "HTTP 201")
    assert step2.provider_message_id == str(note["id"])


def test_a_later_step_waits_for_a_ticket_still_being_retried(raise_alarm, zammad):
    alarm = raise_alarm()
    zammad.server.fail(503, retry_after="1")
    step1 = send(run_step(alarm))
    assert step1.status == "pending"

    step2 = send(run_step(alarm))

    assert (step2.status, step2.attempts) == ("pending", 0), "it waits for the ticket"
    assert len(zammad.server.requests) == 1
    drain(alarm)
    assert len(zammad.tickets) == 1
    assert [a["internal"] for a in zammad.articles_of(1)] == [True, True]
    assert zammad.calls() == [
        ("POST", "/api/v1/tickets"),
        ("POST", "/api/v1/tickets"),
        ("POST", "/api/v1/ticket_articles"),
    ]


def test_the_first_article_on_the_wire_is_internal_by_default(raise_alarm, zammad):
    alarm = raise_alarm()

    opened_ticket(alarm)

    [create] = zammad.server.requests
    assert b'"internal": true' in create.body
    assert b'"internal": false' not in create.body
    assert b"/a/" in create.body


@pytest.fixture
def public_helpdesk(helpdesk):
    helpdesk.config["internal"] = False
    helpdesk.save()
    return helpdesk


def test_a_public_article_leaves_the_ack_link_out(raise_alarm, zammad, public_helpdesk):
    alarm = raise_alarm()

    opened_ticket(alarm)

    [create] = zammad.server.requests
    assert b'"internal": false' in create.body
    assert b"/a/" not in create.body
    assert b"Acknowledge" not in create.body
    assert b"ALARM: Fridge too warm" in create.body
    assert not AckLink.objects.filter(alarm=alarm).exists(), "no link was issued at all"


def test_a_later_public_article_leaves_the_ack_link_out_too(raise_alarm, zammad, public_helpdesk):
    alarm = raise_alarm()
    opened_ticket(alarm)

    send(run_step(alarm))

    note = zammad.server.requests[-1]
    assert note.path == "/api/v1/ticket_articles"
    assert b'"internal": false' in note.body
    assert b"/a/" not in note.body
    assert b"Escalation: step 2 of 2" in note.body


def test_internal_must_be_true_or_false(helpdesk):
    helpdesk.config["internal"] = "no"

    with pytest.raises(ValidationError, match="'internal' must be true or false"):
        helpdesk.transport().clean_config(helpdesk.config)


def test_an_ack_adds_an_internal_note_saying_who(raise_alarm, zammad):
    alarm = raise_alarm()
    opened_ticket(alarm)

    lifecycle.acknowledge(alarm.pk, DANA, note="on my way")
    told = send(follow_up(alarm, "acknowledged"))

    assert zammad.calls()[-1] == ("POST", "/api/v1/ticket_articles")
    note = zammad.articles_of(1)[-1]
    assert note["internal"] is True
    assert note["subject"].startswith("Acknowledged: [CRITICAL] Fridge too warm")
    assert note["body"].startswith("Acknowledged by Dispatcher Dana.")
    assert "/a/" not in note["body"]
    assert zammad.tickets[1]["state"] == "new"
    assert (told.status, told.provider_status) == ("sent", "HTTP 201")
    assert told.provider_message_id == str(note["id"])
    assert "Told acknowledged to Helpdesk" in alarm.events.filter(kind="delivery_sent").last().text


def test_resolving_closes_the_ticket_with_a_note(raise_alarm, zammad):
    alarm = raise_alarm()
    opened_ticket(alarm)
    lifecycle.acknowledge(alarm.pk, DANA)
    send(follow_up(alarm, "acknowledged"))

    lifecycle.resolve(alarm.pk, DANA)
    closed = send(follow_up(alarm, "resolved"))

    assert zammad.calls() == [
        ("POST", "/api/v1/tickets"),
        ("POST", "/api/v1/ticket_articles"),
        ("PUT", "/api/v1/tickets/1"),
    ]
    assert zammad.tickets[1]["state"] == "closed"
    last = zammad.articles_of(1)[-1]
    assert last["internal"] is True and last["body"].startswith("Resolved by Dispatcher Dana.")
    assert (closed.status, closed.provider_status, closed.provider_message_id) == (
        "sent", "HTTP 200", "1",
    )  # fmt: skip
    assert json.loads(closed.response)["state_id"] == FakeZammad.STATES["closed"]


def test_cancelling_closes_the_ticket_too(raise_alarm, zammad):
    alarm = raise_alarm()
    opened_ticket(alarm)

    lifecycle.cancel(alarm.pk, DANA, note="false alarm")
    closed = send(follow_up(alarm, "cancelled"))

    assert zammad.calls()[-1] == ("PUT", "/api/v1/tickets/1")
    assert zammad.tickets[1]["state"] == "closed"
    assert zammad.articles_of(1)[-1]["body"].startswith("Cancelled by Dispatcher Dana.")
    assert closed.status == "sent"


def test_the_configured_close_state_is_used(raise_alarm, zammad, helpdesk):
    helpdesk.config["close_state"] = "merged"
    helpdesk.save()
    alarm = raise_alarm()
    opened_ticket(alarm)

    lifecycle.resolve(alarm.pk, DANA)
    send(follow_up(alarm, "resolved"))

    assert zammad.tickets[1]["state"] == "merged"


# --- failures -------------------------------------------------------------------------------


def test_a_500_is_retried_with_backoff_and_still_opens_one_ticket(raise_alarm, zammad, helpdesk):
    alarm = raise_alarm()
    zammad.server.fail(500, body={"error": "Mysql2::Error: Lock wait timeout exceeded"})

    first = send(run_step(alarm))

    assert (first.status, first.attempts, first.provider_status) == ("pending", 1, "HTTP 500")
    assert "Lock wait timeout" in first.error
    wait = first.next_attempt_at - timezone.now()
    assert timedelta(seconds=4) < wait <= timedelta(seconds=10)
    assert not zammad.tickets
    assert sending.attempt(first.pk) is None, "not before its time"

    again = send(first)

    assert (again.status, again.attempts, again.error) == ("sent", 2, "")
    assert len(zammad.tickets) == 1
    alarm.refresh_from_db()
    assert alarm.external_refs[f"channel:{helpdesk.pk}"]["ticket_id"] == 1
    assert not alarm.events.filter(kind="delivery_failed").exists()


def test_a_timeout_is_retried(raise_alarm, zammad, settings):
    settings.DELIVERY_TIMEOUT_SECONDS = 0.3
    alarm = raise_alarm()
    zammad.server.fail(201, body={"id": 99, "number": "late"}, delay=1.5)

    first = send(run_step(alarm))

    assert (first.status, first.error) == ("pending", "timed out after 0.3s")
    drain(alarm)
    assert len(zammad.tickets) == 1
    assert Delivery.objects.get(pk=first.pk).provider_message_id == "31001"


def test_a_wrong_token_fails_at_once(raise_alarm, zammad, helpdesk):
    helpdesk.config["token"] = "not-the-right-token"
    helpdesk.save()
    alarm = raise_alarm()

    failed = send(run_step(alarm))

    assert (failed.status, failed.attempts, failed.provider_status) == ("failed", 1, "HTTP 401")
    assert "Authentication required" in failed.error
    assert failed.next_attempt_at is None
    assert not zammad.tickets
    event = alarm.events.get(kind="delivery_failed")
    assert "after a permanent error" in event.text
    assert "Authentication required" in event.text


def test_a_config_missing_the_customer_fails_without_calling_zammad(raise_alarm, zammad, helpdesk):
    NotificationChannel.objects.filter(pk=helpdesk.pk).update(
        config={"url": zammad.url, "token": TOKEN}
    )
    alarm = raise_alarm()

    failed = send(run_step(alarm))

    assert failed.status == "failed"
    assert failed.error == "invalid configuration: 'customer' is required."
    assert zammad.server.requests == []


def test_closing_a_ticket_deleted_in_zammad_fails_for_good(raise_alarm, zammad):
    alarm = raise_alarm()
    opened_ticket(alarm)
    del zammad.tickets[1]

    lifecycle.resolve(alarm.pk, DANA)
    closed = send(follow_up(alarm, "resolved"))

    assert (closed.status, closed.provider_status) == ("failed", "HTTP 404")
    assert "Couldn't find Ticket" in closed.error


def test_an_answer_that_is_not_a_ticket_is_not_taken_for_one(raise_alarm, zammad):
    alarm = raise_alarm()
    zammad.server.fail(200, body="<html><title>Sign in</title></html>")

    first = send(run_step(alarm))

    assert first.status in ("pending", "failed")
    alarm.refresh_from_db()
    assert alarm.external_refs == {}


# --- an ACK racing the ticket's creation ------------------------------------------------------


def test_an_ack_while_the_create_waits_for_a_retry_still_makes_the_ticket_then_notes_it(
    raise_alarm, zammad
):
    alarm = raise_alarm()
    zammad.server.fail(502)
    create = send(run_step(alarm))
    assert create.status == "pending"

    lifecycle.acknowledge(alarm.pk, DANA)

    # The ticket is a record the helpdesk keeps: it is still made, and the ACK is noted on it.
    create.refresh_from_db()
    assert create.status == "pending"
    note = follow_up(alarm, "acknowledged")
    assert sending.attempt(note.pk) is None, "the note waits for the ticket"
    assert send(create).status == "sent"
    note.refresh_from_db()
    assert note.next_attempt_at <= timezone.now(), "the note is due once the ticket exists"
    assert send(note).status == "sent"
    assert zammad.calls() == [
        ("POST", "/api/v1/tickets"), ("POST", "/api/v1/tickets"),
        ("POST", "/api/v1/ticket_articles"),
    ]  # fmt: skip
    assert len(zammad.tickets) == 1


def test_an_ack_after_the_create_failed_for_good_sends_no_note(raise_alarm, zammad):
    alarm = raise_alarm()
    zammad.server.fail(401, body={"error": "Authentication required"})
    assert send(run_step(alarm)).status == "failed"

    lifecycle.acknowledge(alarm.pk, DANA)
    lifecycle.resolve(alarm.pk, DANA)

    assert list(Delivery.objects.filter(alarm=alarm).values_list("event", flat=True)) == ["notify"]
    assert len(zammad.server.requests) == 1


def _send_in_thread(row_id: int) -> threading.Thread:
    def run():
        try:
            sending.attempt(row_id)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def creation_in_flight(raise_alarm, zammad):
    """An alarm whose ticket creation has reached Zammad and waits there for its answer."""
    alarm = raise_alarm()
    gate = zammad.hold_creation()
    create = run_step(alarm)
    thread = _send_in_thread(create.pk)
    zammad.creating.wait(5)
    assert Delivery.objects.get(pk=create.pk).status == "sending"

    def finish():
        gate.set()
        thread.join(10)
        create.refresh_from_db()
        return create

    yield alarm, finish
    gate.set()
    thread.join(10)


@pytest.mark.django_db(transaction=True)
def test_an_ack_while_the_ticket_is_being_created_waits_then_notes_that_ticket(
    creation_in_flight, zammad
):
    alarm, finish = creation_in_flight

    lifecycle.acknowledge(alarm.pk, DANA)
    note = follow_up(alarm, "acknowledged")
    assert sending.attempt(note.pk) is None, "the note waits for the ticket"
    note.refresh_from_db()
    assert (note.status, note.attempts) == ("pending", 0), "waiting costs no attempt"
    assert zammad.calls() == [("POST", "/api/v1/tickets")]

    assert finish().status == "sent"
    note = send(note)

    assert note.status == "sent"
    assert len(zammad.tickets) == 1
    assert zammad.calls() == [("POST", "/api/v1/tickets"), ("POST", "/api/v1/ticket_articles")]
    assert zammad.articles_of(1)[-1]["body"].startswith("Acknowledged by Dispatcher Dana.")


@pytest.mark.django_db(transaction=True)
def test_a_note_waiting_for_the_ticket_goes_as_soon_as_the_ticket_exists(
    creation_in_flight, zammad
):
    alarm, finish = creation_in_flight
    lifecycle.acknowledge(alarm.pk, DANA)
    note = follow_up(alarm, "acknowledged")
    sending.attempt(note.pk)

    finish()

    note.refresh_from_db()
    assert note.next_attempt_at <= timezone.now() + timedelta(seconds=5)


@pytest.mark.django_db(transaction=True)
def test_a_note_waiting_for_a_create_that_then_fails_for_good_is_cancelled(
    creation_in_flight, zammad
):
    alarm, finish = creation_in_flight
    zammad.held_answer = Answer(401, {"error": "Authentication required"})  # answered once
    lifecycle.acknowledge(alarm.pk, DANA)
    note = follow_up(alarm, "acknowledged")
    sending.attempt(note.pk)

    finish()
    drain(alarm)

    note.refresh_from_db()
    assert (note.status, note.error) == (
        "cancelled", "not sent: no step ever posted to this channel",
    )  # fmt: skip
    assert Delivery.objects.get(alarm=alarm, event="notify").status == "failed"
    assert zammad.calls() == [("POST", "/api/v1/tickets")]
    assert not zammad.tickets


@pytest.mark.django_db(transaction=True)
def test_a_create_that_fails_in_flight_after_the_ack_is_retried_and_then_noted(
    creation_in_flight, zammad
):
    alarm, finish = creation_in_flight
    zammad.held_answer = Answer(500, {"error": "no"})
    lifecycle.acknowledge(alarm.pk, DANA)

    finish()
    drain(alarm)

    rows = Delivery.objects.filter(alarm=alarm).order_by("pk")
    assert [(d.event, d.status) for d in rows] == [("notify", "sent"), ("acknowledged", "sent")]
    assert zammad.calls() == [
        ("POST", "/api/v1/tickets"), ("POST", "/api/v1/tickets"),
        ("POST", "/api/v1/ticket_articles"),
    ]  # fmt: skip
    assert len(zammad.tickets) == 1


# --- secrets -----------------------------------------------------------------------------------


def stored_text() -> str:
    """Everything the broker wrote down about deliveries: rows, timeline, remembered refs."""
    return json.dumps(
        [
            list(Delivery.objects.values()),
            list(AlarmEvent.objects.values()),
            list(Alarm.objects.values_list("external_refs", flat=True)),
        ],
        default=str,
    )


def logged_text(caplog) -> str:
    return caplog.text + "".join(r.getMessage() for r in caplog.records)


def test_the_token_is_never_written_down(raise_alarm, zammad, helpdesk, caplog, settings):
    caplog.set_level(logging.DEBUG)
    settings.DELIVERY_TIMEOUT_SECONDS = 0.3
    # The ticket's whole life, with an error quoting the token, a timeout and a 503 on the way.
    alarm = raise_alarm()
    zammad.server.fail(500, body={"error": f"upstream rejected Token token={TOKEN}"})
    zammad.server.fail(500, delay=1)
    zammad.server.fail(503, body=f"<html>Authorization: Token token={TOKEN}</html>")
    create = run_step(alarm)
    for _ in range(3):
        assert send(create).status == "pending"
    assert "***" in create.error
    drain(alarm)
    send(run_step(alarm))
    lifecycle.acknowledge(alarm.pk, DANA)
    lifecycle.resolve(alarm.pk, DANA)
    drain(alarm)
    assert zammad.tickets[1]["state"] == "closed"
    # Failing for good with the token quoted back, and a Zammad that is not there at all.
    down = NotificationChannel.objects.create(
        kind="zammad", name="Helpdesk (down)",
        config={"url": f"http://127.0.0.1:{free_port()}", "token": TOKEN, "customer": "x@y.org"},
    )  # fmt: skip
    other = raise_alarm(channels=[helpdesk, down])
    zammad.server.fail(401, body={"error": f"Invalid token {TOKEN}"})
    Alarm.objects.filter(pk=other.pk).update(next_escalation_at=timezone.now())
    engine.run_due_step(other.pk)
    rows = [send(row) for row in Delivery.objects.filter(alarm=other).order_by("channel__name")]

    assert [row.status for row in rows] == ["failed", "pending"]
    assert "connection failed" in rows[1].error
    assert TOKEN in zammad.server.requests[0].headers["authorization"], "the token was sent"
    assert TOKEN not in stored_text()
    assert "127.0.0.1" in caplog.text, "HTTP calls were logged at DEBUG"
    assert TOKEN not in logged_text(caplog)


def test_a_crashing_transport_is_logged_without_the_token(
    raise_alarm, helpdesk, caplog, monkeypatch
):
    def crash(session, method, url, **kwargs):
        raise RuntimeError(f"unexpected: {kwargs['headers']}")

    monkeypatch.setattr("notifications.transports.base.requests.Session.request", crash)
    caplog.set_level(logging.DEBUG)
    alarm = raise_alarm()

    failed = send(run_step(alarm))

    assert (failed.status, failed.error) == ("pending", "internal error: RuntimeError")
    assert "transport zammad crashed" in caplog.text
    assert "Authorization" in caplog.text, "the headers were logged, their values redacted"
    assert TOKEN not in logged_text(caplog)
    assert TOKEN not in stored_text()


def test_a_token_with_a_stray_newline_fails_for_good_and_is_not_written_down(raise_alarm, helpdesk):
    NotificationChannel.objects.filter(pk=helpdesk.pk).update(
        config={**helpdesk.config, "token": TOKEN + "\n"}
    )
    alarm = raise_alarm()

    failed = send(run_step(alarm))

    assert TOKEN not in stored_text()
    assert failed.status == "failed"
