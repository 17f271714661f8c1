"""Who may do what: every endpoint, walked with every role, a device, an integration and no
credentials. Users call the API with their own API tokens, and pages with a session."""

import json

import pytest

from accounts.models import ApiToken
from alarms import lifecycle
from alarms.timeline import SYSTEM
from devices.models import Device

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "no role", "Viewers", "Dispatch", "Operators"]
CALLERS = ROLES + ["device", "alertmanager"]

# Per endpoint, who is let through; everyone else must get 401 or 403.
API = {
    ("GET", "/v1/alarms/"): {"Viewers", "Dispatch", "Operators", "device"},
    ("GET", "/v1/alarms/{alarm}"): {"Viewers", "Dispatch", "Operators", "device"},
    # A device may clear (resolve) its own alarm; acknowledging and cancelling are for people.
    ("POST", "/v1/alarms/{alarm}/acknowledge"): {"Dispatch", "Operators"},
    ("POST", "/v1/alarms/{alarm}/resolve"): {"Dispatch", "Operators", "device"},
    ("POST", "/v1/alarms/{alarm}/cancel"): {"Dispatch", "Operators"},
    ("POST", "/v1/alarms/raise"): {"Dispatch", "Operators", "device"},
    ("POST", "/v1/alarms/clear"): {"Dispatch", "Operators", "device"},
    ("POST", "/v1/integrations/alertmanager"): {"alertmanager"},
    ("POST", "/v1/metrics"): set(),
    ("POST", "/v1/admin/seed"): {"Operators"},
}
BODIES = {
    "/v1/alarms/raise": {"title": "Role check", "dedup_key": "role-check"},
    "/v1/alarms/clear": {"dedup_key": "role-check"},
    "/v1/integrations/alertmanager": {"version": "4", "status": "firing", "alerts": []},
    "/v1/metrics": {"name": "temperature", "value": 1},
    "/v1/admin/seed": {"sites": [{"name": "Clinic North"}]},
}
# Pages: who sees the page itself; the others are sent to sign in (302) or refused (403).
PAGES = {
    "/board/": {"Viewers", "Dispatch", "Operators"},
    "/admin/": {"Operators"},
    "/admin/devices/device/": {"Operators"},
    "/admin/escalation/routingrule/": {"Operators"},
    "/admin/notifications/notificationchannel/": {"Operators"},
    "/admin/accounts/auditentry/": {"Operators"},
}


@pytest.fixture
def credentials(make_user, make_device):
    """Per caller: the Authorization header value for the API, and the user for pages."""
    found = {"anonymous": (None, None)}
    for role in ROLES[1:]:
        user = make_user(role.lower().replace(" ", "-"), role=None if role == "no role" else role)
        found[role] = (f"Bearer {ApiToken.issue(user, 'matrix')[1]}", user)
    device, token = make_device("Panic button", kind=Device.Kind.GENERIC)
    found["device"] = (f"Bearer {token}", None)
    _, token = make_device("Alertmanager", kind=Device.Kind.ALERTMANAGER, room=None)
    found["alertmanager"] = (f"Bearer {token}", None)
    return found, device


def call_api(client, method, path, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    if method == "GET":
        return client.get(path, **extra)
    body = json.dumps(BODIES.get(path, {}))
    return client.post(path, body, content_type="application/json", **extra)


@pytest.mark.parametrize("caller", CALLERS)
def test_every_api_endpoint_lets_in_exactly_the_roles_it_names(client, credentials, caller):
    found, device = credentials
    header, _ = found[caller]
    wrong = []
    for (method, path), allowed in API.items():
        # A fresh alarm of the device's own for each call: a device may see only its own.
        alarm = lifecycle.raise_alarm(
            source="api", dedup_key=f"{caller}{path}", title="Fall", device=device, actor=SYSTEM
        ).alarm
        response = call_api(client, method, path.format(alarm=alarm.pk), header)
        refused = response.status_code in (401, 403)
        if refused == (caller in allowed) or refused and "error" not in response.json():
            wrong.append(f"{method} {path}: {response.status_code} {response.content[:120]}")
    assert not wrong, f"{caller}:\n" + "\n".join(wrong)


def device_call(client, token, path, body=None):
    return client.post(path, json.dumps(body or {}), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip


@pytest.mark.parametrize("action", ["acknowledge", "cancel"])
def test_a_device_may_not_acknowledge_or_cancel_even_its_own_alarm(client, make_device, action):
    device, token = make_device("Panic button", kind=Device.Kind.GENERIC)
    alarm = device_call(client, token, "/v1/alarms/raise", {"title": "Help", "dedup_key": "b"})

    response = device_call(client, token, f"/v1/alarms/{alarm.json()['alarm_id']}/{action}")

    assert response.status_code == 403
    assert response.json() == {
        "error": f"A device token may not {action} alarms: that is for people (a login, or a "
        "user's API token). A device raises its alarms and clears (resolves) its own."
    }
    assert device.alarms.get().status == "triggered"


def test_a_device_resolves_its_own_alarm_as_its_clear_would(client, make_device):
    _, token = make_device("Panic button", kind=Device.Kind.GENERIC)
    raised = device_call(client, token, "/v1/alarms/raise", {"title": "Help", "dedup_key": "b"})

    response = device_call(client, token, f"/v1/alarms/{raised.json()['alarm_id']}/resolve")

    assert response.status_code == 200
    assert response.json()["status"] == "resolved"
    assert response.json()["resolved_by"] == "device Panic button"


def test_a_device_may_not_resolve_another_devices_alarm(client, make_device):
    other, _ = make_device("Desk phone", kind=Device.Kind.YEALINK)
    _, token = make_device("Panic button", kind=Device.Kind.GENERIC)
    alarm = lifecycle.raise_alarm(
        source="yealink", dedup_key="k", title="Help", device=other, actor=SYSTEM
    ).alarm

    response = device_call(client, token, f"/v1/alarms/{alarm.pk}/resolve")

    assert response.status_code == 404 and "error" in response.json()
    assert other.alarms.get().status == "triggered"


@pytest.mark.parametrize("caller", ROLES)
def test_every_page_lets_in_exactly_the_roles_it_names(client, credentials, caller):
    _, user = credentials[0][caller]
    if user is not None:
        client.force_login(user)
    wrong = []
    for path, allowed in PAGES.items():
        status = client.get(path).status_code
        if (status == 200) != (caller in allowed) or status not in (200, 302, 403):
            wrong.append(f"{path}: {status}")
    assert not wrong, f"{caller}:\n" + "\n".join(wrong)


def test_without_credentials_the_api_answers_401_and_names_the_scheme(client):
    response = client.get("/v1/alarms/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": "Authentication credentials were not provided."}


def test_a_dispatcher_signing_in_to_the_admin_is_told_to_use_the_board(client, make_user):
    make_user("dana", role="Dispatch")
    response = client.post("/admin/login/", {"username": "dana", "password": "pw"})
    assert response.status_code == 200
    assert "may not change the configuration" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_operator_enters_the_admin_without_the_staff_flag(client, make_user):
    make_user("olga", role="Operators")
    response = client.post("/admin/login/", {"username": "olga", "password": "pw"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
