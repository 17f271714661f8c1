"""Throttles: sign-in (board and admin) against password guessing, ACK links and API alarm
actions against floods, users' API tokens per token."""

import re

import pytest

from accounts import login_throttle
from accounts.models import ApiToken, AuditEntry
from alarms import lifecycle
from alarms.acklinks import issue_ack_link
from alarms.timeline import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    return 3


@pytest.mark.parametrize("login_path", ["/accounts/login/", "/admin/login/"])
def test_after_too_many_failed_sign_ins_even_the_right_password_is_refused_with_429(
    client, make_user, limit, login_path
):
    make_user("olga", role="Operators")
    for _ in range(limit):
        wrong = client.post(login_path, {"username": "olga", "password": "guess"})
        assert wrong.status_code == 200
    refused = client.post(login_path, {"username": "olga", "password": "pw"})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many failed sign-ins" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    failures = AuditEntry.objects.filter(action="login failed", actor="olga")
    assert failures.count() == limit and failures.first().source_ip == "127.0.0.1"


def test_failures_for_a_username_from_elsewhere_do_not_lock_them_out_where_they_sign_in(
    client, make_user, limit
):
    make_user("dana", role="Dispatch")
    for n in range(limit * 3):  # a stranger, from one address and from many
        client.post("/accounts/login/", {"username": "dana", "password": "x"},
                    REMOTE_ADDR=f"198.51.100.{n}")  # fmt: skip
        client.post("/admin/login/", {"username": "DANA ", "password": "x"},
                    REMOTE_ADDR="203.0.113.9")  # fmt: skip
    response = client.post("/accounts/login/", {"username": "dana", "password": "pw"})
    assert response.status_code == 302 and response["Location"] == "/board/"


def test_the_address_that_failed_is_refused_for_that_username_only(client, make_user, limit):
    make_user("dana", role="Dispatch")
    make_user("dirk", role="Dispatch")
    for _ in range(limit):
        client.post("/accounts/login/", {"username": "dana", "password": "x"})
    assert (
        client.post("/accounts/login/", {"username": "dana", "password": "pw"}).status_code == 429
    )
    response = client.post("/accounts/login/", {"username": "dirk", "password": "pw"})
    assert response.status_code == 302


def test_one_address_failing_for_many_usernames_is_refused_for_every_username(
    client, make_user, limit
):
    make_user("dana", role="Dispatch")
    for n in range(login_throttle.ADDRESS_LIMIT_FACTOR * limit):
        client.post("/accounts/login/", {"username": f"guess{n}", "password": "x"})
    refused = client.post("/accounts/login/", {"username": "dana", "password": "pw"})
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.content.decode()
    elsewhere = client.post("/accounts/login/", {"username": "dana", "password": "pw"},
                            REMOTE_ADDR="192.0.2.7")  # fmt: skip
    assert elsewhere.status_code == 302


def test_a_successful_sign_in_below_the_limit_works(client, make_user, limit):
    make_user("dana", role="Dispatch")
    client.post("/accounts/login/", {"username": "dana", "password": "x"})
    response = client.post("/accounts/login/", {"username": "dana", "password": "pw"})
    assert response.status_code == 302 and response["Location"] == "/board/"
    assert AuditEntry.objects.filter(action="login", user__username="dana").exists()


def test_ack_links_opened_too_often_from_one_address_get_a_readable_429(
    client, settings, make_device, alice
):
    settings.ACK_RATE_PER_MINUTE = 3
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="Fall", actor=SYSTEM).alarm
    path = re.search(r"/a/[\w-]+", issue_ack_link(alarm, alice)).group(0)
    assert [client.get(path).status_code for _ in range(3)] == [200, 200, 200]
    # Guessing is counted the same as using.
    refused = client.get("/a/not-a-real-link")
    assert refused.status_code == 429 and refused["Retry-After"] == "60"
    assert "Too many requests" in refused.content.decode()
    assert client.get(path, REMOTE_ADDR="192.0.2.1").status_code == 200


def test_alarm_actions_through_the_api_are_limited_per_user(client, settings, make_user):
    settings.ACK_RATE_PER_MINUTE = 2
    client.force_login(make_user("dana", role="Dispatch"))
    alarms = [
        lifecycle.raise_alarm(source="api", dedup_key=f"k{n}", title="Fall", actor=SYSTEM).alarm
        for n in range(3)
    ]
    answers = [client.post(f"/v1/alarms/{a.pk}/acknowledge").status_code for a in alarms]
    assert answers == [200, 200, 429]
    assert alarms[2].__class__.objects.get(pk=alarms[2].pk).status == "triggered"


def test_a_users_api_token_is_limited_per_token(client, settings, make_user):
    settings.API_TOKEN_RATE_PER_MINUTE = 2
    _, token = ApiToken.issue(make_user("vic", role="Viewers"), "wallboard")
    answers = [client.get("/v1/alarms/", HTTP_AUTHORIZATION=f"Bearer {token}") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"].startswith("Rate limit exceeded for this API token")
