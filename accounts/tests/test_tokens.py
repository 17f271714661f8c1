"""Token lifecycles: a user's API token (issued once, used, revoked) and a device's token
(rotated with a grace period, restricted to networks and, for a phone, to its MAC address)."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from core.tokens import hash_token
from devices.models import Device

pytestmark = pytest.mark.django_db


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def raise_with(client, token, **extra):
    body = json.dumps({"title": "Fall in room 4"})
    return client.post("/v1/alarms/raise", body, content_type="application/json",
                       **bearer(token), **extra)  # fmt: skip


@pytest.fixture
def operator_client(client, make_user):
    client.force_login(make_user("olga", role="Operators"))
    return client


def test_an_api_token_is_shown_once_stored_hashed_used_and_revoked(
    operator_client, make_user, client
):
    dana = make_user("dana", role="Dispatch")
    response = operator_client.post(
        "/admin/accounts/apitoken/add/", {"user": dana.pk, "name": "dispatch tablet"}, follow=True
    )
    token = re.search(r"<code>([\w-]{20,})</code>", response.content.decode()).group(1)
    stored = ApiToken.objects.get(name="dispatch tablet")
    assert stored.token_hash == hash_token(token) and token not in str(stored.__dict__)
    assert (
        operator_client.get(f"/admin/accounts/apitoken/{stored.pk}/change/").content.count(
            token.encode()
        )
        == 0
    )  # never shown again

    operator_client.logout()
    assert client.get("/v1/alarms/", **bearer(token)).status_code == 200
    stored.refresh_from_db()
    assert stored.last_used_at is not None

    client.force_login(make_user("olga2", role="Operators"))
    client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [stored.pk]},
    )
    client.logout()
    refused = client.get("/v1/alarms/", **bearer(token))
    assert refused.status_code == 401
    assert refused.json() == {"error": "Unknown, revoked or disabled token."}


def test_an_api_token_acts_with_its_users_role(client, make_user):
    _, viewer_token = ApiToken.issue(make_user("vic", role="Viewers"), "wallboard")
    _, dispatch_token = ApiToken.issue(make_user("dana", role="Dispatch"), "tablet")
    assert raise_with(client, viewer_token).status_code == 403
    raised = raise_with(client, dispatch_token)
    assert raised.status_code == 201
    alarm = raised.json()["alarm_id"]
    acked = client.post(f"/v1/alarms/{alarm}/acknowledge", **bearer(dispatch_token))
    assert acked.json()["acknowledged_by"] == "dana"


def test_a_disabled_users_token_stops_working(client, make_user):
    user = make_user("gone", role="Dispatch")
    _, token = ApiToken.issue(user, "old laptop")
    user.is_active = False
    user.save()
    assert client.get("/v1/alarms/", **bearer(token)).status_code == 401


def test_a_rotated_device_token_keeps_working_through_the_grace_period_only(
    operator_client, client, make_device
):
    device, old = make_device("Panic button", kind=Device.Kind.GENERIC)
    answer = operator_client.post(
        "/admin/devices/device/",
        {"action": "rotate_tokens_with_grace", "_selected_action": [device.pk]},
        follow=True,
    ).content.decode()
    new = re.search(r"Token for Panic button: <code>([\w-]+)</code>", answer).group(1)
    assert "The old token keeps working until" in answer
    assert raise_with(client, old).status_code == 201
    assert raise_with(client, new).status_code == 201

    device.refresh_from_db()
    device.previous_token_valid_until = timezone.now() - timedelta(seconds=1)
    device.save()
    assert raise_with(client, old).status_code == 401
    assert raise_with(client, new).status_code == 201


def test_ending_the_grace_period_stops_the_old_token_at_once(operator_client, client, make_device):
    device, old = make_device("Panic button", kind=Device.Kind.GENERIC)
    device.rotate_token(timedelta(hours=24))
    device.save()
    assert raise_with(client, old).status_code == 201
    operator_client.post(
        "/admin/devices/device/", {"action": "end_grace", "_selected_action": [device.pk]}
    )
    assert raise_with(client, old).status_code == 401


def test_a_device_restricted_to_a_network_is_refused_from_elsewhere(client, make_device):
    _, token = make_device("Panic button", kind=Device.Kind.GENERIC,
                           allowed_networks="10.1.0.0/16\n2001:db8::/32")  # fmt: skip
    inside = raise_with(client, token, REMOTE_ADDR="10.1.4.2")
    outside = raise_with(client, token, REMOTE_ADDR="10.2.0.9")
    assert inside.status_code == 201
    assert outside.status_code == 403
    assert outside.json() == {"error": "this token may not be used from 10.2.0.9"}
    assert raise_with(client, token, REMOTE_ADDR="2001:db8::7").status_code == 201


def test_the_proxy_header_names_the_client_only_when_it_comes_from_a_trusted_proxy(
    client, make_device, settings
):
    _, token = make_device("Panic button", kind=Device.Kind.GENERIC, allowed_networks="10.1.0.0/16")
    forwarded = {"HTTP_X_FORWARDED_FOR": "10.1.4.2, 127.0.0.1"}
    # Not configured: the header is anybody's to write, so it is not read.
    assert raise_with(client, token, **forwarded).status_code == 403
    settings.TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    assert raise_with(client, token, **forwarded).status_code == 201
    # The same header from a peer that is not one of our proxies.
    assert raise_with(client, token, REMOTE_ADDR="192.0.2.7", **forwarded).status_code == 403


def test_a_yealink_token_bound_to_a_mac_address_works_only_from_that_phone(client, make_device):
    _, token = make_device("Desk phone 1", mac_address="00:15:65:AA:BB:CC")
    url = f"/v1/yealink/alarm?token={token}"
    assert client.get(url + "&mac=001565aabbcc").status_code == 200
    other = client.get(url + "&mac=001565000000")
    assert other.status_code == 403
    assert other.json() == {"error": "this token belongs to another phone (mac does not match)"}
    assert client.get(url).status_code == 403


def test_a_wrong_network_or_mac_is_refused_when_saved(make_device):
    from django.core.exceptions import ValidationError

    device, _ = make_device("Desk phone 1")
    device.allowed_networks, device.mac_address = "10.1.0.0/33", "00:15"
    with pytest.raises(ValidationError) as refused:
        device.full_clean()
    assert set(refused.value.message_dict) == {"allowed_networks", "mac_address"}
