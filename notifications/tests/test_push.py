"""Push to phones through self-hosted servers: ntfy (priority, tags, a click URL and buttons
that acknowledge or claim through the recipient's own link) and Gotify, each against a local
server that checks what the real one checks and answers in its format."""

import json
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError

from alarms import lifecycle
from alarms.models import Alarm, AlarmEvent
from alarms.timeline import Actor
from devices.models import Person
from notifications.models import Delivery

from .fake_provider import Answer
from .steps import make_channel, send_only, send_pending

pytestmark = pytest.mark.django_db

NTFY_TOKEN = "tk_" + "q7w2e9r4t6y1u3i8o5p0a2s4d6f8g"
GOTIFY_APP_TOKEN = "AbCdEf.gH1jK2l"
NTFY_ACTIONS = {"view", "broadcast", "http"}


def ntfy_error(status: int, code: int, error: str) -> Answer:
    return Answer(status, {"code": code, "http": status, "error": error,
                           "link": "https://ntfy.sh/docs/publish/"})  # fmt: skip


@pytest.fixture
def ntfy(provider):
    """ntfy's JSON publish (`POST /` with the topic in the body) on a server that wants an
    access token; `provider.published` holds the messages as its subscribers receive them."""
    provider.published = []

    def publish(request, match) -> Answer:
        if request.headers.get("authorization") != f"Bearer {NTFY_TOKEN}":
            return ntfy_error(403, 40301, "forbidden")
        try:
            body = request.json
        except ValueError:
            return ntfy_error(400, 40017, "invalid request: request body must be message JSON")
        topic = body.get("topic", "")
        if not isinstance(topic, str) or not topic or len(topic) > 64:
            return ntfy_error(400, 40009, "invalid request: topic invalid")
        priority = body.get("priority", 3)
        if priority not in range(1, 6):
            return ntfy_error(400, 40007, "invalid priority")
        actions = body.get("actions", [])
        if len(actions) > 3 or any(
            a.get("action") not in NTFY_ACTIONS or not a.get("label") or not a.get("url")
            for a in actions
        ):
            return ntfy_error(400, 40018, "invalid request: actions invalid")
        message = {
            "id": f"n{len(provider.published):011d}", "time": int(time.time()),
            "expires": int(time.time()) + 43200, "event": "message", "topic": topic,
            "title": body.get("title", ""), "message": body.get("message", ""),
            "priority": priority, "tags": body.get("tags", []), "click": body.get("click", ""),
            "actions": [{"id": f"a{n}", **action} for n, action in enumerate(actions)],
        }  # fmt: skip
        provider.published.append(message)
        return Answer(200, message)

    provider.route("POST", r"/", publish)
    return provider


@pytest.fixture
def gotify(provider):
    """Gotify's `POST /message` with an application token; `provider.posted` holds the
    messages it stored, by the token's application."""
    provider.posted = []

    def message(request, match) -> Answer:
        token = request.headers.get("x-gotify-key") or request.query.get("token")
        if token != GOTIFY_APP_TOKEN:
            return Answer(401, {"error": "Unauthorized", "errorCode": 401, "errorDescription":
                                "you need to provide a valid access token or user credentials "
                                "to access this api"})  # fmt: skip
        body = request.json
        if not body.get("message"):
            return Answer(400, {"error": "Bad Request", "errorCode": 400,
                                "errorDescription": "Field 'message' is required"})  # fmt: skip
        stored = {"id": len(provider.posted) + 1, "appid": 7, **body,
                  "date": datetime.now(UTC).isoformat()}  # fmt: skip
        provider.posted.append(stored)
        return Answer(200, stored)

    provider.route("POST", r"/message", message)
    return provider


@pytest.fixture
def alice(make_person):
    person = make_person("Alice", gotify_token=GOTIFY_APP_TOKEN)
    person.issue_ntfy_topic()
    person.save()
    return person


def press(client, action: dict):
    """What the ntfy app does when a button is pressed: its request, to our server."""
    assert action["action"] == "http" and action["method"] == "POST"
    return client.post(urlsplit(action["url"]).path)


def test_a_critical_page_rings_through_with_buttons_and_a_click_to_its_ack_page(
    ntfy, raise_alarm, alice
):
    make_channel("ntfy", url=ntfy.url, token=NTFY_TOKEN)
    alarm = raise_alarm([alice], methods=["ntfy"], severity="critical")

    row = send_only(alarm)
    assert row.status == "sent", row.error
    (push,) = ntfy.published
    assert push["topic"] == alice.ntfy_topic
    assert push["priority"] == 5
    assert push["tags"] == ["rotating_light", "critical"]
    assert push["title"].startswith("[CRITICAL] Emergency key pressed")
    assert urlsplit(push["click"]).path.startswith("/a/")
    assert [(a["label"], a["url"]) for a in push["actions"]] == [
        ("Acknowledge", push["click"] + "/acknowledge"),
        ("On my way", push["click"] + "/claim"),
    ]
    assert row.provider_message_id == push["id"]
    # The token acts as Alice: it is on her phone, never in our records.
    token = urlsplit(push["click"]).path.rsplit("/", 1)[1]
    assert token not in row.message + row.response
    assert NTFY_TOKEN not in row.message + row.response + row.error


def test_the_acknowledge_button_acknowledges_as_the_recipient_once(
    ntfy, raise_alarm, alice, client
):
    make_channel("ntfy", url=ntfy.url, token=NTFY_TOKEN)
    alarm = raise_alarm([alice], methods=["ntfy"])
    send_only(alarm)
    acknowledge, _ = ntfy.published[0]["actions"]

    # A link preview or a scanner fetching the address changes nothing.
    assert client.get(urlsplit(acknowledge["url"]).path).status_code == 405
    assert Alarm.objects.get(pk=alarm.pk).status == "triggered"

    answer = press(client, acknowledge)
    assert answer.status_code == 200
    assert answer.json()["text"] == "Acknowledged: Emergency key pressed"
    alarm.refresh_from_db()
    assert alarm.status == "acknowledged"
    entry = alarm.events.get(kind=AlarmEvent.Kind.ACKNOWLEDGED)
    assert (entry.actor, entry.person) == ("Alice (push button)", alice)

    again = press(client, acknowledge)
    assert again.status_code == 409
    assert again.json()["error"].startswith("This button was used at ")


def test_the_on_my_way_button_claims(ntfy, raise_alarm, alice, client):
    make_channel("ntfy", url=ntfy.url, token=NTFY_TOKEN)
    alarm = raise_alarm([alice], methods=["ntfy"])
    send_only(alarm)
    _, on_my_way = ntfy.published[0]["actions"]

    answer = press(client, on_my_way)

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"text": "On your way: Emergency key pressed",
                             "status": "acknowledged", "changed": True}  # fmt: skip
    assert alarm.claims.get().name == "Alice"


def test_a_button_for_a_closed_alarm_or_an_unknown_link_says_so(ntfy, raise_alarm, alice, client):
    make_channel("ntfy", url=ntfy.url, token=NTFY_TOKEN)
    alarm = raise_alarm([alice], methods=["ntfy"])
    send_only(alarm)
    lifecycle.resolve(alarm.pk, Actor("Dana"))
    acknowledge, _ = ntfy.published[0]["actions"]

    closed = press(client, acknowledge)
    assert closed.status_code == 410
    assert closed.json() == {"error": "Emergency key pressed was resolved by Dana",
                             "status": "resolved"}  # fmt: skip
    unknown = client.post("/a/" + "x" * 43 + "/acknowledge")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Unknown link."})


def test_a_stand_down_is_quiet_and_has_no_buttons(ntfy, raise_alarm, alice, bob):
    bob.issue_ntfy_topic()
    bob.save()
    make_channel("ntfy", url=ntfy.url, token=NTFY_TOKEN)
    alarm = raise_alarm([alice, bob], methods=["ntfy"], severity="critical")
    send_pending(alarm)
    lifecycle.acknowledge(alarm.pk, Actor("Alice (push button)", person=alice))
    send_pending(alarm)

    stand_down = ntfy.published[-1]
    assert stand_down["topic"] == bob.ntfy_topic
    assert stand_down["priority"] == 2
    assert stand_down["tags"] == ["white_check_mark"]
    assert stand_down["actions"] == [] and stand_down["click"] == ""
    assert "acknowledged by Alice" in stand_down["message"]


def test_a_refused_token_fails_for_good_and_says_why(ntfy, raise_alarm, alice):
    make_channel("ntfy", url=ntfy.url, token="tk_" + "w" * 29)
    alarm = raise_alarm([alice], methods=["ntfy"])

    row = send_only(alarm)

    assert row.status == "failed"
    assert row.error.startswith('HTTP 403: {"code": 40301')


def test_gotify_posts_with_the_persons_application_token_and_a_click_url(
    gotify, raise_alarm, alice
):
    make_channel("gotify", url=gotify.url)
    alarm = raise_alarm([alice], methods=["gotify"], severity="high")

    row = send_only(alarm)

    assert row.status == "sent", row.error
    assert row.address == f"gotify:{alice.pk}"  # the token is a credential: not on the row
    (message,) = gotify.posted
    assert message["priority"] == 8
    assert message["title"].startswith("[HIGH] Emergency key pressed")
    click = message["extras"]["client::notification"]["click"]["url"]
    assert urlsplit(click).path.startswith("/a/")
    assert message["extras"]["client::display"] == {"contentType": "text/plain"}
    assert row.provider_message_id == "1"
    assert GOTIFY_APP_TOKEN not in json.dumps(list(Delivery.objects.values()), default=str)


def test_a_person_without_a_push_contact_point_is_not_pushed_to(ntfy, raise_alarm, make_person):
    make_channel("ntfy", url=ntfy.url, token=NTFY_TOKEN)
    carol = make_person("Carol")

    alarm = raise_alarm([carol], methods=["ntfy", "gotify"])

    assert not Delivery.objects.filter(alarm=alarm).exists()


def test_a_topic_is_long_enough_not_to_be_guessed():
    person = Person(name="Dora", ntfy_topic="dora")
    with pytest.raises(ValidationError, match="can be guessed"):
        person.full_clean()
    person.issue_ntfy_topic()
    person.full_clean()
    assert len(person.ntfy_topic) >= 30
    first = person.ntfy_topic
    assert person.issue_ntfy_topic() != first
