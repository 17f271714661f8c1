"""The board's WebSocket consumer, through the real ASGI stack and the Redis channel layer."""

import asyncio
import json
from urllib.parse import urlsplit

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from alarms import board, lifecycle
from alarms.board import cards, consumer, snapshot
from alarms.models import Alarm
from alarms.timeline import SYSTEM
from alarmsite.asgi import application
from conftest import free_port, raise_over_api
from core.redis_client import client as redis_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatcher(db):
    user = User.objects.create_user("dana", password="pw")
    user.groups.add(Group.objects.get(name="Dispatch"))
    return user


def session_cookie(client, user) -> bytes:
    """The session cookie of this user, logged in on this client (one user per client)."""
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(cookie: bytes | None = None, origin: str | None = "") -> WebsocketCommunicator:
    """A socket to the board, as a page from `origin` opens it (default: PUBLIC_BASE_URL;
    None: no Origin header)."""
    host = urlsplit(settings.PUBLIC_BASE_URL).netloc
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", (origin or settings.PUBLIC_BASE_URL).encode()))
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/board/", headers=headers)


async def receive_until(socket, predicate, timeout=10):
    """Next message matching predicate, skipping others (heartbeats, unrelated alarms)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await socket.receive_json_from(timeout=timeout)
            if predicate(message):
                return message


def raise_through_api(client, token, title="Smoke in room 2", dedup_key="smoke-2"):
    return raise_over_api(client, token, title=title, dedup_key=dedup_key, severity="high")


def test_an_anonymous_socket_is_refused():
    async def scenario():
        socket = communicator()
        connected, code = await socket.connect()
        assert not connected
        assert code == 4403

    async_to_sync(scenario)()


@pytest.fixture
def served_on_port_8303(settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8303"
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", ".example.com"]
    settings.CSRF_TRUSTED_ORIGINS = [
        "http://127.0.0.1:8303", "https://board.example.org", "https://*.example.net",
    ]  # fmt: skip


def connects(cookie: bytes, origin: str | None) -> bool:
    async def scenario():
        socket = communicator(cookie, origin)
        connected, _ = await socket.connect()
        await socket.disconnect()
        return connected

    return async_to_sync(scenario)()


def test_a_page_on_another_port_of_the_same_host_may_not_open_the_board_or_cancel(
    client, dispatcher, served_on_port_8303
):
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="Fall", actor=SYSTEM).alarm
    cookie = session_cookie(client, dispatcher)

    async def scenario():
        socket = communicator(cookie, origin="http://127.0.0.1:9999")
        connected, _ = await socket.connect()
        if connected:  # what the other page went on to do
            await socket.receive_json_from()
            await socket.send_json_to({"action": "cancel", "alarm_id": str(alarm.pk)})
            await receive_until(socket, lambda m: m["type"] == "result")
        await socket.disconnect()
        return connected

    assert async_to_sync(scenario)() is False
    assert Alarm.objects.get(pk=alarm.pk).status == "triggered"


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9999",  # another port
        "https://127.0.0.1:8303",  # another scheme
        "http://alarms.example.com:8303",  # ALLOWED_HOSTS' .example.com: names, not origins
        "http://localhost:9999",  # this host's other name, on another port
        "http://127.0.0.1",  # the default port, 80
        "http://127.0.0.1:8303.evil.example",
        "https://example.net",  # the wildcard is for subdomains
        "null",  # a sandboxed frame or a file
        None,  # no Origin header at all
    ],
)
def test_an_origin_that_is_not_allowed_is_refused(client, dispatcher, served_on_port_8303, origin):
    assert not connects(session_cookie(client, dispatcher), origin)


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8303",  # PUBLIC_BASE_URL
        "http://localhost:8303",  # the same server under another name in ALLOWED_HOSTS
        "http://[::1]:8303",
        "https://board.example.org",  # CSRF_TRUSTED_ORIGINS
        "https://board.example.org:443",  # the same, its default port written out
        "HTTPS://Board.Example.org",
        "https://ops.example.net",  # CSRF_TRUSTED_ORIGINS' https://*.example.net
    ],
)
def test_an_allowed_origin_opens_the_board(client, dispatcher, served_on_port_8303, origin):
    assert connects(session_cookie(client, dispatcher), origin)


def test_a_user_outside_dispatch_is_refused(client):
    outsider = User.objects.create_user("olga", password="pw")
    cookie = session_cookie(client, outsider)

    async def scenario():
        connected, code = await communicator(cookie).connect()
        assert (connected, code) == (False, 4403)

    async_to_sync(scenario)()


def test_a_dispatcher_gets_a_snapshot_of_open_alarms_on_connect(client, dispatcher):
    open_alarm = lifecycle.raise_alarm(source="api", dedup_key="a", title="Open", actor=SYSTEM)
    closed = lifecycle.raise_alarm(source="api", dedup_key="b", title="Closed", actor=SYSTEM)
    lifecycle.resolve(closed.alarm.pk, SYSTEM)
    cookie = session_cookie(client, dispatcher)

    async def scenario():
        socket = communicator(cookie)
        assert (await socket.connect())[0]
        snapshot = await socket.receive_json_from()
        await socket.disconnect()
        return snapshot

    snapshot = async_to_sync(scenario)()
    assert snapshot["type"] == "snapshot"
    assert [a["id"] for a in snapshot["alarms"]] == [str(open_alarm.alarm.pk)]
    assert snapshot["alarms"][0]["title"] == "Open"


def receive_snapshot(cookie) -> list[str]:
    """Every message of the snapshot a new socket receives, as sent."""

    async def scenario():
        socket = communicator(cookie)
        assert (await socket.connect())[0]
        texts = []
        while not texts or not json.loads(texts[-1])["done"]:
            texts.append(await socket.receive_from(timeout=30))
        await socket.disconnect()
        return texts

    return async_to_sync(scenario)()


def test_the_snapshot_comes_in_parts_the_most_urgent_first(client, dispatcher, make_device):
    phone, _ = make_device()
    for n in range(140):
        severity = ("info", "warning", "critical")[n % 3]
        Alarm.objects.create(source="api", dedup_key=f"m{n}", title=f"m{n}", severity=severity)
    press = lifecycle.raise_alarm(
        source="yealink", dedup_key="press", title="Emergency key", severity="info",
        device=phone, actor=SYSTEM,
    ).alarm  # fmt: skip

    messages = [json.loads(text) for text in receive_snapshot(session_cookie(client, dispatcher))]

    assert [m["type"] for m in messages] == ["snapshot", "snapshot_part"]
    assert [m["done"] for m in messages] == [False, True]
    assert messages[0]["total"] == 141 and len(messages[0]["alarms"]) == snapshot.SNAPSHOT_FIRST
    assert {m["seq"] for m in messages} == {messages[0]["seq"]}
    sent = [card for m in messages for card in m["alarms"]]
    assert len({card["id"] for card in sent}) == 141
    assert sent[0]["id"] == str(press.pk) and sent[0]["person_press"], "a person's press first"
    ranks = [card["severity_rank"] for card in sent[1:]]
    assert ranks == sorted(ranks), "then by severity"


def test_no_snapshot_message_comes_near_a_frame_limit(client, dispatcher):
    long_text = "x" * cards.CARD_MESSAGE_LENGTH
    Alarm.objects.bulk_create(
        Alarm(source="api", dedup_key=f"long{n}", title=f"long {n}", message=long_text * 3)
        for n in range(400)
    )

    texts = receive_snapshot(session_cookie(client, dispatcher))

    assert len(texts) > 4
    assert max(len(text.encode()) for text in texts) < snapshot.SNAPSHOT_PART_BYTES + 8192
    sent = [card for text in texts for card in json.loads(text)["alarms"]]
    assert len(sent) == 400 and {len(card["message"]) for card in sent} == {len(long_text)}


def test_with_nothing_open_the_snapshot_is_one_message_saying_it_is_done(client, dispatcher):
    [text] = receive_snapshot(session_cookie(client, dispatcher))

    # The epoch is which Redis numbers the events: the one the test run uses.
    epoch = redis_client().info("server")["run_id"]
    assert json.loads(text) | {"seq": 0} == {
        "type": "snapshot", "seq": 0, "total": 0, "done": True, "outbox": [], "alarms": [],
        "epoch": epoch,
    }  # fmt: skip


def test_a_snapshot_the_database_cannot_give_is_an_error_the_page_shows(
    client, dispatcher, monkeypatch
):
    cookie = session_cookie(client, dispatcher)

    def database_down():
        raise OperationalError("connection to server at 127.0.0.1 failed")

    monkeypatch.setattr(snapshot, "Snapshot", database_down)

    async def scenario():
        socket = communicator(cookie)
        assert (await socket.connect())[0]
        message = await socket.receive_json_from()
        closed = await socket.receive_output()
        return message, closed

    message, closed = async_to_sync(scenario)()
    assert message == {"type": "error", "error": consumer.SNAPSHOT_FAILED}
    assert closed == {"type": "websocket.close", "code": consumer.CLOSE_TRY_AGAIN}


def test_while_redis_does_not_answer_the_heartbeat_says_live_updates_are_down(
    client, dispatcher, monkeypatch, settings
):
    cookie = session_cookie(client, dispatcher)
    settings.BOARD_HEARTBEAT_SECONDS = 0.2

    async def scenario():
        socket = communicator(cookie)
        assert (await socket.connect())[0]
        await receive_until(socket, lambda m: m.get("done"))
        nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
        monkeypatch.setattr(board, "client", lambda: nowhere)
        message = await receive_until(socket, lambda m: m["type"] != "heartbeat")
        monkeypatch.undo()  # Redis answers again
        again = await receive_until(socket, lambda m: m["type"] == "heartbeat")
        await socket.disconnect()
        return message, again

    message, again = async_to_sync(scenario)()
    assert message == {"type": "error", "error": consumer.LIVE_UPDATES_DOWN, "live": False}
    assert isinstance(again["seq"], int)


def test_an_alarm_raised_through_the_api_arrives_as_an_event(client, dispatcher, make_device):
    _, token = make_device(kind="generic")
    cookie = session_cookie(client, dispatcher)

    async def scenario():
        socket = communicator(cookie)
        await socket.connect()
        snapshot = await socket.receive_json_from()
        alarm_id = await asyncio.to_thread(raise_through_api, client, token)
        event = await receive_until(socket, lambda m: m["type"] == "alarm")
        await socket.disconnect()
        return snapshot, alarm_id, event

    snapshot, alarm_id, event = async_to_sync(scenario)()
    assert event["alarm"]["id"] == alarm_id
    assert event["alarm"]["status"] == "triggered"
    assert event["seq"] > snapshot["seq"]
    # A new alarm's card is built as it was written, not read back: it must say the same.
    assert event["alarm"] == cards.card(Alarm.objects.get(pk=alarm_id))


def test_a_step_escalated_by_the_worker_arrives_as_an_event(
    client, dispatcher, celery_worker, smtp_server, make_person, make_policy, make_device
):
    alice = make_person("Alice")
    _, token = make_device(kind="generic", default_policy=make_policy([(1, [alice], [])]))
    cookie = session_cookie(client, dispatcher)

    async def scenario():
        socket = communicator(cookie)
        await socket.connect()
        await socket.receive_json_from()
        await asyncio.to_thread(raise_through_api, client, token)
        # The step's task sends its first message itself: one event carries both.
        sent = await receive_until(
            socket, lambda m: any(d["status"] == "sent" for d in m["alarm"]["deliveries"])
        )
        await socket.disconnect()
        return sent

    sent = async_to_sync(scenario)()
    assert sent["alarm"]["step"] == 1
    assert sent["alarm"]["deliveries"][0]["target"] == "Alice"
    assert sent["alarm"]["deliveries"][0]["method"] == "email"


def test_acknowledging_over_the_socket_needs_the_permission_and_reaches_every_board(
    client, dispatcher
):
    viewer = User.objects.create_user("sam", password="pw")
    viewer.groups.add(Group.objects.get(name="Viewers"))
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="Fall", actor=SYSTEM).alarm
    allowed_cookie = session_cookie(client, dispatcher)
    refused_cookie = session_cookie(Client(), viewer)

    async def scenario():
        refused, allowed = communicator(refused_cookie), communicator(allowed_cookie)
        for socket in (refused, allowed):
            assert (await socket.connect())[0]
            await socket.receive_json_from()
        await refused.send_json_to({"action": "acknowledge", "alarm_id": str(alarm.pk)})
        denial = await receive_until(refused, lambda m: m["type"] == "result")
        await allowed.send_json_to(
            {"action": "acknowledge", "alarm_id": str(alarm.pk), "note": "on my way"}
        )
        result = await receive_until(allowed, lambda m: m["type"] == "result")
        seen_elsewhere = await receive_until(
            refused, lambda m: m["type"] == "alarm" and m["alarm"]["status"] == "acknowledged"
        )
        for socket in (refused, allowed):
            await socket.disconnect()
        return denial, result, seen_elsewhere

    denial, result, seen_elsewhere = async_to_sync(scenario)()
    assert denial == {"type": "result", "action": "acknowledge", "ok": False,
                      "error": "You may not acknowledge alarms."}  # fmt: skip
    assert result["ok"] and result["status"] == "acknowledged"
    assert seen_elsewhere["alarm"]["acknowledged_by"] == "dana"
    event = Alarm.objects.get(pk=alarm.pk).events.get(kind="acknowledged")
    assert (event.user, event.text) == (dispatcher, "on my way")


def test_logging_out_closes_the_users_board_sockets(client, dispatcher):
    cookie = session_cookie(client, dispatcher)

    async def scenario():
        socket = communicator(cookie)
        await socket.connect()
        await socket.receive_json_from()
        await asyncio.to_thread(client.post, "/accounts/logout/")
        closed = await socket.receive_output(timeout=5)
        return closed

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": 4401}


def test_a_resync_request_answers_with_a_fresh_snapshot(client, dispatcher):
    cookie = session_cookie(client, dispatcher)

    async def scenario():
        socket = communicator(cookie)
        await socket.connect()
        await socket.receive_json_from()
        await asyncio.to_thread(
            lifecycle.raise_alarm, source="api", dedup_key="late", title="Late", actor=SYSTEM
        )
        await socket.send_json_to({"action": "resync"})
        snapshot = await receive_until(socket, lambda m: m["type"] == "snapshot")
        await socket.disconnect()
        return snapshot

    assert [a["title"] for a in async_to_sync(scenario)()["alarms"]] == ["Late"]


def test_a_new_alarm_is_numbered_but_not_sent_while_no_board_is_open():
    redis_client().delete(board.WATCHED_KEY)
    before = int(redis_client().get(board.SEQUENCE_KEY) or 0)
    layer = get_channel_layer()

    def raise_(key: str):
        return lifecycle.raise_alarm(source="api", dedup_key=key, title=key, actor=SYSTEM)

    async def scenario():
        listener = await layer.new_channel()
        await layer.group_add(board.GROUP, listener)
        await asyncio.to_thread(raise_, "unseen")
        redis_client().set(board.WATCHED_KEY, 1)  # a board opens
        await asyncio.to_thread(raise_, "seen")
        message = await asyncio.wait_for(layer.receive(listener), 5)
        await layer.group_discard(board.GROUP, listener)
        return json.loads(message["text"])

    event = async_to_sync(scenario)()
    assert event["alarm"]["title"] == "seen"  # the first was never sent
    assert event["seq"] == before + 2  # but numbered: a board sees no gap


def test_while_no_board_is_open_a_change_is_numbered_but_not_read_or_sent(client, dispatcher):
    outcome = lifecycle.raise_alarm(source="api", dedup_key="n", title="Nobody looks", actor=SYSTEM)
    alarm_id = outcome.alarm.pk
    redis_client().delete(board.WATCHED_KEY)  # no board open (nor any for a few heartbeats)

    before = int(redis_client().get(board.SEQUENCE_KEY))
    with CaptureQueriesContext(connection) as queries:
        board.send_card(alarm_id)
    assert len(queries) == 0  # not read, so not sent
    assert int(redis_client().get(board.SEQUENCE_KEY)) == before + 1  # a board sees no gap

    cookie = session_cookie(client, dispatcher)

    async def scenario():
        socket = communicator(cookie)
        await socket.connect()
        snapshot = await socket.receive_json_from()
        await asyncio.to_thread(board.send_card, alarm_id)  # a board is open now
        event = await receive_until(socket, lambda m: m["type"] == "alarm")
        await socket.disconnect()
        return snapshot, event

    snapshot, event = async_to_sync(scenario)()
    assert [a["id"] for a in snapshot["alarms"]] == [str(alarm_id)]
    assert event["alarm"]["id"] == str(alarm_id) and event["seq"] > snapshot["seq"]
