"""Channel secrets are write-only in the admin: the change form says whether each is set and
never puts its value in the page; saving without typing one keeps it, typing one replaces it,
and a tick clears it. Driven through the admin's real pages, as an operator's browser would."""

import json
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission, User

from notifications.models import NotificationChannel
from notifications.transports import transport_class

pytestmark = pytest.mark.django_db

ADD = "/admin/notifications/notificationchannel/add/"
TWILIO_TOKEN = "tw-auth-9f3c1a7e5b2d4c6f"
HMAC_SECRET = "hmac-key-5e1d0c9b8a7f"
HEADER_VALUE = "Bearer hdr-7a6b5c4d3e2f"
SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/slack-path-0123456789"
SMS_URL = "https://sms.example.org/send?api_key=sms-key-4b3a2c1d"
ZAMMAD_TOKEN = "zammad-token-8c7d6e5f"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"
UPSTREAM_TOKEN = "upstream-token-1a2b3c4d"

CHANNELS = {
    "twilio": ({"account_sid": "AC1", "auth_token": TWILIO_TOKEN, "from": "+14155550100"},
               [TWILIO_TOKEN]),
    "webhook": ({"url": "https://hooks.example.org/in", "secret": HMAC_SECRET,
                 "headers": {"Authorization": HEADER_VALUE}}, [HMAC_SECRET, HEADER_VALUE]),
    "slack": ({"url": SLACK_URL}, [SLACK_URL, "slack-path-0123456789"]),
    "teams": ({"url": SLACK_URL}, [SLACK_URL, "slack-path-0123456789"]),
    "discord": ({"url": SLACK_URL}, [SLACK_URL, "slack-path-0123456789"]),
    "sms_http": ({"url": SMS_URL, "headers": {"X-Key": HEADER_VALUE}},
                 [SMS_URL, "sms-key-4b3a2c1d", HEADER_VALUE]),
    "signal": ({"url": "https://signal.example.org", "number": "+4930901820",
                "headers": {"Authorization": HEADER_VALUE}}, [HEADER_VALUE]),
    "zammad": ({"url": "https://helpdesk.example.org", "token": ZAMMAD_TOKEN,
                "customer": "alarms@example.org"}, [ZAMMAD_TOKEN]),
    "pagerduty": ({"routing_key": ROUTING_KEY}, [ROUTING_KEY]),
    "upstream": ({"url": "https://central.example.org", "token": UPSTREAM_TOKEN},
                 [UPSTREAM_TOKEN]),
}  # fmt: skip


class FormFields(HTMLParser):
    """The fields of the page's main form as a browser would submit them."""

    def __init__(self, html: str):
        super().__init__()
        self.fields, self._textarea, self._select, self._in_form = {}, None, None, False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form or "name" not in attrs and tag != "option":
            return
        if tag == "input" and attrs.get("type") not in ("submit", "button"):
            if attrs.get("type") != "checkbox" or "checked" in attrs:
                self.fields[attrs["name"]] = attrs.get("value") or (
                    "on" if "checked" in attrs else ""
                )
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self.fields[self._textarea] = ""
        elif tag == "select":
            self._select = attrs["name"]
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields[self._select] = attrs["value"]

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += (
                data.lstrip("\n") if not self.fields[self._textarea] else data
            )

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("operator", "op@example.org", "pw"))
    return client


def make(kind: str) -> NotificationChannel:
    config, _ = CHANNELS[kind]
    return NotificationChannel.objects.create(kind=kind, name=f"{kind} channel", config=config)


def change_url(channel) -> str:
    return f"/admin/notifications/notificationchannel/{channel.pk}/change/"


def stored(channel) -> dict:
    channel.refresh_from_db()
    return channel.config


def save_as_shown(client, channel, **typed):
    """GET the change form, change what is given, and POST it back as the browser would."""
    fields = FormFields(client.get(change_url(channel)).content.decode()).fields
    fields.update(typed)
    return client.post(change_url(channel), {k: v for k, v in fields.items() if v is not None})


@pytest.mark.parametrize("kind", CHANNELS)
def test_the_change_form_says_a_secret_is_set_and_never_shows_it(operator, kind):
    channel = make(kind)

    page = operator.get(change_url(channel)).content.decode()

    assert "Set: leave empty to keep it" in page
    for secret in CHANNELS[kind][1]:
        assert secret not in page
        assert json.dumps(secret)[1:-1] not in page


def test_an_unset_secret_says_so(operator):
    channel = NotificationChannel.objects.create(
        kind="webhook", name="Plain", config={"url": "https://hooks.example.org/in"}
    )

    page = operator.get(change_url(channel)).content.decode()

    assert "Not set" in page


@pytest.mark.parametrize("kind", CHANNELS)
def test_saving_without_typing_the_secrets_keeps_them(operator, kind):
    channel = make(kind)
    with_defaults = transport_class(kind).clean_config(stored(channel))  # a save fills them in

    response = save_as_shown(operator, channel, name="Renamed")

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert stored(channel) == with_defaults
    assert channel.name == "Renamed"


def test_a_typed_secret_replaces_the_stored_one(operator):
    channel = make("twilio")

    response = save_as_shown(operator, channel, secret_auth_token="tw-new-token-0a1b2c")

    assert response.status_code == 302
    assert stored(channel)["auth_token"] == "tw-new-token-0a1b2c"
    assert "tw-new-token-0a1b2c" not in operator.get(change_url(channel)).content.decode()


def test_typed_headers_replace_the_stored_ones(operator):
    channel = make("webhook")

    save_as_shown(operator, channel, secret_headers='{"X-Token": "new-header-value"}')

    assert stored(channel)["headers"] == {"X-Token": "new-header-value"}
    assert stored(channel)["secret"] == HMAC_SECRET


def test_ticking_clear_removes_a_secret(operator):
    channel = make("webhook")

    response = save_as_shown(operator, channel, clear_secret="on")

    assert response.status_code == 302
    assert "secret" not in stored(channel)
    assert stored(channel)["headers"] == {"Authorization": HEADER_VALUE}


def test_clearing_a_required_secret_is_refused_and_keeps_it(operator):
    channel = make("twilio")

    response = save_as_shown(operator, channel, clear_auth_token="on")

    assert response.status_code == 200
    assert "&#x27;auth_token&#x27; is required." in response.content.decode()
    assert stored(channel)["auth_token"] == TWILIO_TOKEN


def test_a_refused_save_does_not_show_the_secret_typed_into_the_config(operator):
    channel = make("slack")
    fresh = "https://hooks.slack.com/services/T0001/B0002/typed-into-json-0123"

    response = save_as_shown(
        operator, channel, config=json.dumps({"url": fresh}), body_template="{% if %}"
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Template error" in page and "typed-into-json" not in page
    assert stored(channel)["url"] == SLACK_URL


def test_a_secret_typed_into_the_config_replaces_the_stored_one(operator):
    channel = make("slack")
    fresh = "https://hooks.slack.com/services/T0001/B0002/typed-into-json-0123"

    assert save_as_shown(operator, channel, config=json.dumps({"url": fresh})).status_code == 302

    assert stored(channel) == {"url": fresh}


def test_the_add_form_takes_secrets_in_their_own_fields(operator):
    fields = FormFields(operator.get(ADD).content.decode()).fields
    fields.update(
        name="Texts", kind="twilio", config='{"account_sid": "AC1", "from": "+14155550100"}',
        secret_auth_token=TWILIO_TOKEN,
    )  # fmt: skip

    response = operator.post(ADD, fields)

    assert response.status_code == 302, response.content.decode()[-2000:]
    channel = NotificationChannel.objects.get(name="Texts")
    assert channel.config["auth_token"] == TWILIO_TOKEN
    assert TWILIO_TOKEN not in operator.get(change_url(channel)).content.decode()


def test_a_secret_the_kind_does_not_have_is_refused(operator):
    fields = FormFields(operator.get(ADD).content.decode()).fields
    fields.update(name="Room", kind="slack", secret_auth_token="x" * 12,
                  config=json.dumps({"url": SLACK_URL}))  # fmt: skip

    response = operator.post(ADD, fields)

    assert response.status_code == 200
    assert "has no secret" in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_who_may_only_view_channels_sees_no_secret_either(client):
    channel = make("webhook")
    viewer = User.objects.create_user("auditor", password="pw", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="configure"),
        Permission.objects.get(codename="view_notificationchannel"),
    )
    client.force_login(viewer)

    page = client.get(change_url(channel)).content.decode()

    assert "https://hooks.example.org/in" in page  # the page shows the channel
    assert HMAC_SECRET not in page and HEADER_VALUE not in page
