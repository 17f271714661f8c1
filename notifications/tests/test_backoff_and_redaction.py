"""The small rules under every delivery: how long a failed one waits, how Retry-After is read,
which configured values are secret and kept out of what we store, and how a channel's config
is checked."""

import email.utils
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError

from notifications.delivery.sending import backoff_seconds
from notifications.models import NotificationChannel
from notifications.transports import CHANNEL_KINDS, transport_class
from notifications.transports.base import retry_after_seconds
from notifications.transports.chat import DiscordTransport, SlackTransport
from notifications.transports.webhook import WebhookTransport

SAMPLES = 500


@pytest.fixture(autouse=True)
def _base(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 10


# --- backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize("attempts, ceiling", [(1, 10), (2, 20), (3, 40), (4, 80), (8, 1280)])
def test_backoff_doubles_and_jitters_within_the_upper_half(attempts, ceiling):
    delays = [backoff_seconds(attempts, None) for _ in range(SAMPLES)]

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    # Spread over the range, so failed deliveries do not all come back at once.
    assert min(delays) < ceiling * 0.6 and max(delays) > ceiling * 0.9
    assert len(set(delays)) > SAMPLES * 0.9


def test_backoff_follows_the_configured_base(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 0.2

    assert all(0.1 <= backoff_seconds(1, None) <= 0.2 for _ in range(SAMPLES))


def test_a_longer_retry_after_is_honoured_with_up_to_a_second_of_jitter():
    delays = [backoff_seconds(1, 120) for _ in range(SAMPLES)]

    assert all(120 <= delay <= 121 for delay in delays)


def test_a_shorter_retry_after_does_not_shorten_the_backoff():
    assert all(20 <= backoff_seconds(3, 2) <= 40 for _ in range(SAMPLES))


def test_a_zero_retry_after_still_waits_the_backoff():
    assert all(5 <= backoff_seconds(1, 0) <= 10 for _ in range(SAMPLES))


@pytest.mark.parametrize("attempts, retry_after", [(12, None), (60, None), (1, 86400), (3, 1e9)])
def test_no_delivery_waits_more_than_an_hour(attempts, retry_after):
    assert backoff_seconds(attempts, retry_after) == 3600


# --- Retry-After --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, seconds",
    [("120", 120.0), ("0", 0.0), ("1.5", 1.5), (" 30 ", 30.0), ("-5", 0.0)],
)
def test_retry_after_in_seconds(header, seconds):
    assert retry_after_seconds(header) == seconds


@pytest.mark.parametrize("header", [None, "", "soon", "Someday, 99 Foo 2024"])
def test_an_absent_or_unreadable_retry_after_is_none(header):
    assert retry_after_seconds(header) is None


def test_retry_after_as_an_http_date():
    when = datetime.now(UTC) + timedelta(seconds=90)

    seconds = retry_after_seconds(email.utils.format_datetime(when, usegmt=True))

    # The header has whole seconds only.
    assert 88 <= seconds <= 90


def test_retry_after_as_an_http_date_in_another_zone():
    berlin_summer = timezone(timedelta(hours=2))
    when = datetime.now(berlin_summer) + timedelta(seconds=600)

    assert 598 <= retry_after_seconds(email.utils.format_datetime(when)) <= 600


def test_a_retry_after_date_in_the_past_means_now():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_a_retry_after_date_without_a_zone_is_read_as_utc():
    when = datetime.now(UTC) + timedelta(seconds=300)

    seconds = retry_after_seconds(when.strftime("%a, %d %b %Y %H:%M:%S"))

    assert 298 <= seconds <= 300


# --- secrets and redaction ----------------------------------------------------------------

SLACK_URL = "https://hooks.slack.com/services/T0ABC/B0DEF/k3yXyZsecret42"


def test_a_secret_url_and_its_path_are_both_secrets():
    transport = SlackTransport({"url": SLACK_URL})

    assert transport.secrets() == [SLACK_URL, "/services/T0ABC/B0DEF/k3yXyZsecret42"]


def test_a_secret_urls_query_counts_with_its_path():
    url = "https://sms.example.net/send?apikey=K3Y-0123&from=ALARM"
    transport = transport_class("sms_http")({"url": url})

    # Each query value counts too: a gateway may quote the key back on its own.
    assert transport.secrets() == [url, "/send?apikey=K3Y-0123&from=ALARM", "K3Y-0123", "ALARM"]
    assert transport.redact("GET /send?apikey=K3Y-0123&from=ALARM 500") == "GET *** 500"
    assert transport.redact("invalid api key K3Y-0123") == "invalid api key ***"


def test_redact_hides_the_whole_url_and_the_path_alone():
    transport = SlackTransport({"url": SLACK_URL})

    assert transport.redact(f"POST {SLACK_URL} failed") == "POST *** failed"
    connection_error = (
        "HTTPSConnectionPool(host='hooks.slack.com', port=443): Max retries exceeded with "
        "url: /services/T0ABC/B0DEF/k3yXyZsecret42 (Caused by NewConnectionError)"
    )
    assert transport.redact(connection_error) == (
        "HTTPSConnectionPool(host='hooks.slack.com', port=443): Max retries exceeded with "
        "url: *** (Caused by NewConnectionError)"
    )


def test_a_discord_url_with_wait_true_appended_is_still_hidden():
    url = "https://discord.com/api/webhooks/1122/tok-abcdef"
    transport = DiscordTransport({"url": url})

    assert transport.redact(f"{url}?wait=true timed out") == "***?wait=true timed out"


def test_every_value_of_a_secret_dict_is_a_secret_but_not_its_names():
    transport = WebhookTransport(
        {
            "url": "https://hooks.example.org/in",
            "secret": "hmac-key-123456",
            "headers": {"Authorization": "Bearer tok-abcdef", "X-Api-Key": "apikey-999"},
        }
    )

    assert sorted(transport.secrets()) == ["Bearer tok-abcdef", "apikey-999", "hmac-key-123456"]
    assert transport.redact("Authorization: Bearer tok-abcdef; X-Api-Key: apikey-999") == (
        "Authorization: ***; X-Api-Key: ***"
    )


def test_a_values_that_are_not_secret_are_left_alone():
    transport = WebhookTransport({"url": "https://hooks.example.org/in/abc"})

    assert transport.secrets() == []
    assert (
        transport.redact("https://hooks.example.org/in/abc") == "https://hooks.example.org/in/abc"
    )


def test_the_longest_secret_is_replaced_first():
    transport = WebhookTransport(
        {"url": "https://h.example/", "secret": "abcd1234", "headers": {"A": "Bearer abcd1234"}}
    )

    assert transport.secrets() == ["Bearer abcd1234", "abcd1234"]
    assert transport.redact("sent Bearer abcd1234 and abcd1234") == "sent *** and ***"


def test_values_too_short_to_be_secrets_are_not_replaced_everywhere():
    # Replacing "1" or "/" would shred every message without hiding anything.
    transport = WebhookTransport(
        {"url": "https://h.example/", "secret": "abc", "headers": {"X-Flag": "1"}}
    )

    assert transport.secrets() == []
    assert transport.redact("HTTP 401: abc 1") == "HTTP 401: abc 1"


def test_twilio_zammad_pagerduty_and_upstream_keep_their_tokens_secret():
    configs = {
        "twilio": {"account_sid": "AC123", "auth_token": "twilio-token-1", "from": "+14155550100"},
        "zammad": {"url": "https://z.example", "token": "zammad-token-1", "customer": "ops"},
        "pagerduty": {"routing_key": "pd-routing-key-1"},
        "upstream": {"url": "https://central.example", "token": "upstream-token-1"},
    }
    for kind, config in configs.items():
        secret = next(v for k, v in config.items() if k in ("auth_token", "token", "routing_key"))
        assert transport_class(kind)(config).secrets() == [secret], kind


def test_a_secret_urls_destination_shows_only_its_host():
    assert SlackTransport({"url": SLACK_URL}).address_for(None) == "https://hooks.slack.com/…"
    plain = WebhookTransport({"url": "https://hooks.example.org/in"})
    assert plain.address_for(None) == "https://hooks.example.org/in"


# --- checking a channel's config ----------------------------------------------------------


def config_error(kind: str, config) -> str:
    with pytest.raises(ValidationError) as caught:
        transport_class(kind).clean_config(config)
    return " ".join(caught.value.messages)


def test_an_unknown_key_is_named_with_the_known_ones():
    assert config_error("slack", {"url": SLACK_URL, "channel": "#ops"}) == (
        "Unknown key(s): channel. Known: url."
    )
    assert config_error("discord", {"url": SLACK_URL, "avatar": "x", "colour": 1}) == (
        "Unknown key(s): avatar, colour. Known: url, username."
    )


@pytest.mark.parametrize(
    "kind, config, missing",
    [
        ("slack", {}, "url"),
        ("teams", {"url": ""}, "url"),
        ("webhook", {"secret": "s3cret"}, "url"),
        ("zammad", {"url": "https://z.example", "token": "t0ken"}, "customer"),
        ("pagerduty", {}, "routing_key"),
        ("signal", {"url": "https://signal.example"}, "number"),
    ],
)
def test_a_missing_required_key_is_named(kind, config, missing):
    assert config_error(kind, config) == f"'{missing}' is required."


@pytest.mark.parametrize(
    "kind, config, message",
    [
        ("discord", {"url": SLACK_URL, "username": 5}, "'username' must be a string."),
        ("webhook", {"url": "https://h.example", "headers": {"X-Try": 1}},
         "'headers' must be an object of strings."),
        ("webhook", {"url": "https://h.example", "headers": ["Authorization: x"]},
         "'headers' must be an object of strings."),
        ("sms_http", {"url": "https://sms.example", "method": "PATCH"},
         "'method' must be one of POST, GET, PUT."),
        ("sms_http", {"url": "https://sms.example", "to": "+49 12"},
         "'to' is not a valid phone number."),
        ("signal", {"url": "https://signal.example", "number": "call me"},
         "'number' must be a number in E.164 form."),
        ("slack", {"url": "ftp://hooks.example/x"}, "'url' must be an http(s) URL."),
        ("email", {"to": "ops@example.org, not-an-address"},
         "'to': 'not-an-address' is not an email address."),
        ("twilio", {"account_sid": "AC1", "auth_token": "tok1"},
         "Set 'from' or 'messaging_service_sid'."),
    ],
)  # fmt: skip
def test_a_wrong_value_is_named(kind, config, message):
    assert config_error(kind, config) == message


@pytest.mark.parametrize("config", [None, [], "url=https://x", 42])
def test_a_config_that_is_not_an_object_is_refused(config):
    assert config_error("slack", config) == "The config must be a JSON object."


def test_an_error_about_a_secret_never_repeats_its_value():
    message = config_error("slack", {"url": "https://hooks.slack.com/ bad-secret-77"})

    assert "bad-secret-77" not in message


def test_defaults_are_filled_in():
    assert transport_class("discord").clean_config({"url": SLACK_URL}) == {
        "url": SLACK_URL,
        "username": "Alarm broker",
    }
    assert transport_class("sms_http").clean_config({"url": "https://sms.example"}) == {
        "url": "https://sms.example",
        "method": "POST",
        "format": "json",
        "params": {"to": "{to}", "text": "{text}"},
        "headers": {},
        "message_id_field": "",
    }


@pytest.mark.django_db
def test_the_admin_form_shows_config_errors_on_the_config_field():
    channel = NotificationChannel(kind="webhook", name="Ops", config={"uri": "https://x.example"})

    with pytest.raises(ValidationError) as caught:
        channel.full_clean()

    assert caught.value.message_dict == {
        "config": ["Unknown key(s): uri. Known: url, secret, headers."]
    }


def test_every_kind_has_a_transport_that_documents_its_keys():
    for kind in CHANNEL_KINDS:
        transport = transport_class(kind)
        assert transport.label, kind
        assert transport.config_help() != "", kind
