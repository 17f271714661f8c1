"""Password reset requests are limited per client address and per email address asked for,
answering alike whether or not an account has that address."""

import pytest
from django.core import mail

from accounts import reset_throttle
from conftest import REAL_REDIS

pytestmark = pytest.mark.django_db

RESET = "/accounts/password_reset/"


def forget_requests():
    for key in REAL_REDIS.scan_iter("password-reset:*"):
        REAL_REDIS.delete(key)


@pytest.fixture(autouse=True)
def _no_requests_counted():
    forget_requests()


@pytest.fixture
def dana(make_user):
    return make_user("dana", role="Dispatch", email="dana@example.org")


def ask(client, email, address="127.0.0.1"):
    return client.post(RESET, {"email": email}, REMOTE_ADDR=address)


def test_fifteen_requests_for_one_account_send_only_as_many_emails_as_the_limit(client, dana):
    answers = [ask(client, "dana@example.org").status_code for _ in range(15)]

    limit = reset_throttle.PER_EMAIL
    assert answers == [302] * limit + [429] * (15 - limit)
    assert len(mail.outbox) == limit
    assert all(message.to == ["dana@example.org"] for message in mail.outbox)


def test_one_email_address_is_limited_whichever_address_asks(client, dana):
    for n in range(reset_throttle.PER_EMAIL):
        assert ask(client, "Dana@Example.org", address=f"198.51.100.{n}").status_code == 302

    assert ask(client, "dana@example.org", address="203.0.113.5").status_code == 429
    assert len(mail.outbox) == reset_throttle.PER_EMAIL


def test_one_client_address_is_limited_whichever_email_addresses_it_asks_for(client, dana):
    for n in range(reset_throttle.PER_ADDRESS):
        assert ask(client, f"someone{n}@example.org").status_code == 302

    assert ask(client, "dana@example.org").status_code == 429
    assert mail.outbox == []
    assert ask(client, "dana@example.org", address="192.0.2.8").status_code == 302
    assert len(mail.outbox) == 1


def test_the_refusal_is_a_readable_page_with_retry_after(client, dana):
    for _ in range(reset_throttle.PER_EMAIL):
        ask(client, "dana@example.org")

    refused = ask(client, "dana@example.org")

    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= reset_throttle.WINDOW_SECONDS
    page = refused.content.decode()
    assert "Too many password reset requests" in page and "Try again in" in page
    assert '<input type="email" name="email"' in page


def test_an_address_without_an_account_is_answered_exactly_as_one_with(client, dana):
    def answers(email):
        return [
            (r.status_code, r.get("Location"), r.get("Retry-After") is not None)
            for r in (ask(client, email) for _ in range(reset_throttle.PER_EMAIL + 1))
        ]

    known = answers("dana@example.org")
    forget_requests()
    unknown = answers("nobody@example.org")

    assert known == unknown
    assert known[0] == (302, "/accounts/password_reset/done/", False)
    assert len(mail.outbox) == reset_throttle.PER_EMAIL
