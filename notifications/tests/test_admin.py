"""The channel admin: config checked per kind, a preview on a sample alarm, and the "send test
message" action and button (for channels and for people), showing the provider's answer."""

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages

from notifications.models import NotificationChannel

from .fake_provider import Answer

pytestmark = pytest.mark.django_db

SECRET_URL = "/services/T000/B000/s3cr3t-hook-path"


@pytest.fixture
def operator(client):
    user = User.objects.create_superuser("operator", "op@example.org", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def slack(provider):
    provider.route("POST", SECRET_URL, lambda request, match: Answer(200, "ok"))
    return NotificationChannel.objects.create(
        kind="slack", name="Ops room", config={"url": provider.url + SECRET_URL}
    )


def shown(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def change_url(channel) -> str:
    return f"/admin/notifications/notificationchannel/{channel.pk}/change/"


def test_the_change_page_previews_each_message_on_a_sample_alarm(operator, slack):
    page = operator.get(change_url(slack)).content.decode()

    assert "Preview on a sample alarm" in page
    # The sample alarm's hostile title arrives escaped for Slack, then for the page.
    assert "Test message: emergency key pressed &amp;lt;b&amp;gt;" in page
    assert "<b>&" not in page
    for event in ["notify", "acknowledged", "resolved"]:
        assert f"<h4>{event}</h4>" in page
    assert "Acknowledged* by Alice Adams" in page
    assert "url: url (secret), required" in page  # the config keys of this kind
    assert "Send test message" in page


def test_the_preview_of_a_public_zammad_channel_shows_no_ack_link(operator):
    public = NotificationChannel.objects.create(
        kind="zammad", name="Helpdesk (public)",
        config={"url": "https://zammad.example.org", "token": "t" * 20, "group": "Users",
                "customer": "alarms@example.org", "internal": False},
    )  # fmt: skip

    page = operator.get(change_url(public)).content.decode()

    assert "preview on a sample alarm" in page.lower() and "sample-link" not in page


def test_a_custom_template_shows_in_the_preview_and_a_broken_one_is_refused(operator, slack):
    slack.body_template = "Custom for {{ alarm.location }}: {{ alarm.title }}"
    slack.save()
    page = operator.get(change_url(slack)).content.decode()
    assert "Custom for Main building / Room 1.07" in page

    form = {
        "name": "Ops room", "kind": "slack", "enabled": "on",
        "config": f'{{"url": "{slack.config["url"]}"}}',
        "subject_template": "", "body_template": "{% if %}",
    }  # fmt: skip
    response = operator.post(change_url(slack), form)
    assert response.status_code == 200
    assert "Template error:" in response.content.decode()
    slack.refresh_from_db()
    assert slack.body_template.startswith("Custom for")


def test_a_bad_config_is_refused_in_the_form_naming_the_key(operator):
    form = {
        "name": "Pager", "kind": "pagerduty", "enabled": "on",
        "config": '{"routing_key": "", "region": "eu"}',
        "subject_template": "", "body_template": "",
    }  # fmt: skip
    response = operator.post("/admin/notifications/notificationchannel/add/", form)

    assert response.status_code == 200
    assert "Unknown key(s): region" in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_the_button_sends_a_test_message_and_shows_the_answer_without_the_secret(
    operator, slack, provider
):
    response = operator.post(f"/admin/notifications/notificationchannel/{slack.pk}/send-test/")

    assert response.status_code == 302
    (request,) = provider.requests
    assert request.path == SECRET_URL
    assert request.json["text"].startswith("[TEST]")
    (message,) = shown(response)
    assert message.startswith("Ops room: sent: HTTP 200")
    assert "s3cr3t" not in message


def test_the_test_message_of_a_channel_that_opens_something_also_closes_it(operator, provider):
    key = "R" * 32
    provider.route("POST", "/v2/enqueue", lambda request, match: Answer(202, {
        "status": "success", "message": "Event processed",
        "dedup_key": request.json["dedup_key"],
    }))  # fmt: skip
    pager = NotificationChannel.objects.create(
        kind="pagerduty",
        name="Pager",
        config={"routing_key": key, "url": provider.url + "/v2/enqueue"},
    )

    response = operator.post(
        "/admin/notifications/notificationchannel/",
        {"action": "send_test_message", "_selected_action": [pager.pk]},
    )

    assert [r.json["event_action"] for r in provider.requests] == ["trigger", "resolve"]
    assert len({r.json["dedup_key"] for r in provider.requests}) == 1
    messages = shown(response)
    assert messages[0].startswith("Pager: sent: HTTP 202")
    assert messages[1].startswith("Pager (resolve): sent: HTTP 202")
    assert not any(key in m for m in messages)


def test_a_webhooks_test_message_is_followed_by_its_resolve(operator, provider):
    provider.route("POST", "/hook", lambda request, match: Answer(200, {"ok": True}))
    hook = NotificationChannel.objects.create(
        kind="webhook", name="Ops webhook", config={"url": provider.url + "/hook"}
    )

    operator.post(
        "/admin/notifications/notificationchannel/",
        {"action": "send_test_message", "_selected_action": [hook.pk]},
    )

    assert [r.json["event"] for r in provider.requests] == ["alarm.test", "alarm.resolved"]
    assert len({r.json["alarm"]["id"] for r in provider.requests}) == 1


def test_a_failing_provider_shows_its_answer_as_an_error(operator, slack, provider):
    provider.fail(403, body="invalid_token")

    response = operator.post(f"/admin/notifications/notificationchannel/{slack.pk}/send-test/")

    (message,) = shown(response)
    assert message == "Ops room: failed: HTTP 403: invalid_token"


def test_a_person_gets_a_test_message_on_each_contact_point(
    operator, make_person, smtp_server, provider
):
    provider.route("POST", "/v2/send", lambda request, match: Answer(201, {"timestamp": "17"}))
    NotificationChannel.objects.create(
        kind="signal", name="Signal gateway",
        config={"url": provider.url, "number": "+4915112345678"},
    )  # fmt: skip
    person = make_person("Dana", signal_number="+4915187654321")

    response = operator.post(
        "/admin/devices/person/",
        {"action": "send_test_message", "_selected_action": [person.pk]},
    )

    messages = shown(response)
    assert messages[0].startswith("Email to dana@example.org: sent: SMTP 250")
    assert messages[1] == "SMS: failed: no enabled SMS channel to send through"
    assert messages[2].startswith("Signal to +4915187654321: sent: HTTP 201 id 17")
    assert len(smtp_server.messages) == 1
    assert provider.requests[0].json["recipients"] == ["+4915187654321"]


def test_only_those_who_may_change_channels_can_send_test_messages(client, slack, provider):
    viewer = User.objects.create_user("viewer", password="pw")
    viewer.user_permissions.add(
        Permission.objects.get(codename="configure"),  # enters the admin
        Permission.objects.get(codename="view_notificationchannel"),
    )
    client.force_login(viewer)

    response = client.post(f"/admin/notifications/notificationchannel/{slack.pk}/send-test/")

    assert response.status_code == 403
    assert not provider.requests
    assert (
        client.get(f"/admin/notifications/notificationchannel/{slack.pk}/send-test/").status_code
        == 405
    )
