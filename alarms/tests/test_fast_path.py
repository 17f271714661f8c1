"""The device fast path, through the web process's real ASGI application: devices get the API's
own answers, raises that arrive together are committed together, and whatever is not a
device's request reaches Django with its body."""

import asyncio
import json

import pytest
from channels.testing import HttpCommunicator

from accounts.models import ApiToken
from alarms.models import Alarm
from alarmsite.asgi import application
from conftest import forget_rate_limit
from devices.models import Device

pytestmark = pytest.mark.django_db(transaction=True)


def call(method: str, path: str, body=None, token: str | None = None, raw: bytes | None = None):
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    content = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
    headers.append((b"content-length", str(len(content)).encode()))

    async def ask():
        communicator = HttpCommunicator(application, method, path, content, headers)
        return await communicator.get_response(timeout=20)

    return asyncio.run(ask())


def answer(response) -> tuple[int, dict]:
    return response["status"], json.loads(response["body"])


def header(response, name: bytes) -> str:
    return dict(response["headers"]).get(name, b"").decode()


@pytest.fixture
def generic_device(make_device, make_policy):
    return make_device("Boiler sensor", kind=Device.Kind.GENERIC, default_policy=make_policy([]))


def test_a_phone_key_press_is_stored_and_answered_as_the_api_answers_it(make_device):
    device, token = make_device()

    status, body = answer(call("GET", f"/v1/yealink/alarm?token={token}"))

    assert status == 200
    alarm = Alarm.objects.get(pk=body["alarm_id"])
    assert body == {"alarm_id": str(alarm.pk), "status": "triggered", "created": True,
                    "occurrences": 1}  # fmt: skip
    assert alarm.device == device and alarm.source == "yealink"
    assert answer(call("GET", f"/v1/yealink/alarm?token={token}"))[1]["occurrences"] == 2


def test_a_device_raise_is_stored_then_repeated_on_the_same_key(generic_device):
    device, token = generic_device
    raise_ = {"title": "Boiler pressure low", "dedup_key": "pressure", "severity": "high"}

    first = call("POST", "/v1/alarms/raise", raise_, token)
    again = call("POST", "/v1/alarms/raise", raise_, token)

    assert answer(first)[0] == 201 and answer(again)[0] == 200
    assert answer(first)[1]["alarm_id"] == answer(again)[1]["alarm_id"]
    alarm = Alarm.objects.get()
    assert (alarm.dedup_key, alarm.occurrences) == (f"device:{device.pk}:pressure", 2)
    assert header(first, b"content-type") == "application/json"


def test_bad_requests_get_the_apis_json_errors_and_store_nothing(make_device, generic_device):
    _, phone_token = make_device("Desk phone 9", room=None)
    device, token = generic_device
    _, alertmanager_token = make_device("AM", kind=Device.Kind.ALERTMANAGER)

    assert answer(call("GET", "/v1/yealink/alarm?token=nope")) == (
        404, {"error": "unknown or disabled device token"})  # fmt: skip
    assert answer(call("GET", f"/v1/yealink/alarm?token={phone_token}"))[0] == 409
    status, body = answer(call("POST", "/v1/alarms/raise", raw=b"{nope", token=token))
    assert status == 400 and body["error"].startswith("JSON parse error - ")
    status, body = answer(call("POST", "/v1/alarms/raise", {"severity": "dire"}, token))
    assert status == 400 and set(body["fields"]) == {"title", "severity"}
    status, body = answer(call("POST", "/v1/alarms/raise", {"title": "x"}, alertmanager_token))
    assert status == 403 and "use its own endpoint" in body["error"]
    huge = b'{"title": "' + b"x" * (1024 * 1024) + b'"}'
    assert answer(call("POST", "/v1/alarms/raise", raw=huge, token=token))[0] == 413
    assert not Alarm.objects.exists()


def test_a_device_over_its_limit_is_told_when_to_come_back(generic_device):
    device, token = generic_device
    Device.objects.filter(pk=device.pk).update(rate_limit_per_minute=2)
    forget_rate_limit(device)

    answers = [call("POST", "/v1/alarms/raise", {"title": "Boiler"}, token) for _ in range(3)]

    assert [answer(a)[0] for a in answers] == [201, 201, 429]
    assert header(answers[2], b"retry-after") == "60"
    assert Alarm.objects.count() == 2


def test_a_users_api_token_goes_the_apis_whole_way_with_its_body(make_user):
    _, token = ApiToken.issue(make_user("dana", role="Dispatch"), "console")

    status, body = answer(call("POST", "/v1/alarms/raise", {"title": "Fire drill"}, token))

    assert status == 201
    assert Alarm.objects.get(pk=body["alarm_id"]).dedup_key.startswith("api:")


def test_raises_that_arrive_together_are_all_stored_and_answered(generic_device):
    _, token = generic_device
    Device.objects.update(rate_limit_per_minute=1000)

    async def burst():
        communicators = [
            HttpCommunicator(application, "POST", "/v1/alarms/raise",
                             json.dumps({"title": f"Boiler {n}"}).encode(),
                             [(b"content-type", b"application/json"),
                              (b"authorization", f"Bearer {token}".encode())])
            for n in range(30)
        ]  # fmt: skip
        return await asyncio.gather(*(c.get_response(timeout=20) for c in communicators))

    answers = [json.loads(r["body"]) for r in asyncio.run(burst())]

    assert Alarm.objects.count() == 30
    assert sorted(a["alarm_id"] for a in answers) == sorted(
        str(pk) for pk in Alarm.objects.values_list("pk", flat=True)
    )


def test_a_nul_in_a_device_raise_is_stored_as_a_replacement_character(generic_device):
    _, token = generic_device
    raw = b'{"title": "Boiler\\u0000", "labels": {"zone\\u0000": "east\\ud800"}}'

    status, body = answer(call("POST", "/v1/alarms/raise", raw=raw, token=token))

    assert status == 201, body
    alarm = Alarm.objects.get(pk=body["alarm_id"])
    assert (alarm.title, alarm.labels) == ("Boiler\ufffd", {"zone\ufffd": "east\ufffd"})
    assert "title, labels.zone\ufffd" in alarm.events.latest("id").text


def test_a_body_nested_100000_deep_with_a_bad_token_is_a_400_json(generic_device):
    deep = b"[" * 100_000 + b"]" * 100_000

    for token in ("not-a-token", generic_device[1]):
        status, body = answer(call("POST", "/v1/alarms/raise", raw=deep, token=token))

        assert status == 400
        assert "nested deeper than 64 levels" in body["error"]


def test_a_byte_that_is_not_utf8_costs_no_alarm(generic_device):
    raw = b'{"title": "Caf\xe9 fridge"}'  # Latin-1, as an old device may send it

    status, body = answer(call("POST", "/v1/alarms/raise", raw=raw, token=generic_device[1]))

    assert status == 201, body
    assert Alarm.objects.get(pk=body["alarm_id"]).title == "Caf\ufffd fridge"


def test_a_phone_press_whose_mac_holds_a_nul_is_refused_as_another_phone(make_device):
    """The query's token and MAC are only compared, never stored: a NUL or a byte that is not
    UTF-8 in them is a wrong MAC, not an error."""
    _, token = make_device(mac_address="00:15:65:aa:bb:cc")

    status, body = answer(call("GET", f"/v1/yealink/alarm?token={token}&mac=%00%ff%ED%A0%80"))

    assert status == 403 and "mac does not match" in body["error"]
    assert not Alarm.objects.exists()
