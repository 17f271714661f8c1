"""Slack, Microsoft Teams and Discord, each against a local server that answers as the provider's
webhook does: the JSON that arrives, the colours, the channel's ACK link, the follow-ups, the
Delivery audit, the provider's errors, and alarm text that tries to ping or fake a link."""

import json
import re
from datetime import datetime, timedelta
from unittest.mock import ANY

import pytest
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import AckLink, Alarm
from alarms.timeline import SYSTEM, Actor
from notifications.models import Delivery, NotificationChannel
from notifications.tests.steps import send_pending

from .fake_provider import Answer

pytestmark = pytest.mark.django_db

BASE = "https://alarms.example.org"
SLACK_PATH = "/services/T0001/B0002/slacksecret0123456789"
DISCORD_PATH = "/api/webhooks/112233445566778899/discord-secret-token_0123456789"
TEAMS_PATH = "/workflows/6f1c2a/triggers/manual/paths/invoke"
TEAMS_QUERY = "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=teamssig0123456789"
DISCORD_MESSAGE_ID = "1251111111111111111"

HOSTILE_TITLE = 'Fire <!channel> <@U123> @everyone [click](http://evil) *bold* "q" \\ & co'
HOSTILE_MESSAGE = "<script>alert(1)</script> ~strike~ `code` # head"


class Matches:
    """Equal to any string that fully matches the pattern (for tokens and times in JSON)."""

    def __init__(self, pattern: str):
        self.pattern = re.compile(pattern)

    def __eq__(self, other):
        return isinstance(other, str) and bool(self.pattern.fullmatch(other))

    def __repr__(self):
        return f"Matches({self.pattern.pattern!r})"


# Markdown a reader would see rendered: a link, or emphasis/markup not preceded by a backslash.
UNESCAPED_LINK = re.compile(r"(?<!\\)\[([^\]]*)\]\((\S+?)\)")
UNESCAPED_MARKUP = re.compile(r"(?<!\\)[*`~<>]")

# Plain-text templates are rendered with Django's HTML autoescape on top of the transport's
# own escaping (notifications/messages.py: Context() defaults to autoescape=True).

ACK_URL = Matches(re.escape(BASE) + r"/a/[A-Za-z0-9_\-]{32}")


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.PUBLIC_BASE_URL = BASE
    settings.DELIVERY_TIMEOUT_SECONDS = 2


# --- the providers ------------------------------------------------------------------------


def _slack(request, match):
    """Slack's incoming webhook: 200 "ok", or its plain-text error codes."""
    if match.group(1) != "slacksecret0123456789":
        return Answer(403, "invalid_token")
    if not request.headers.get("content-type", "").startswith("application/json"):
        return Answer(400, "invalid_payload")
    try:
        body = json.loads(request.body)
    except ValueError:
        return Answer(400, "invalid_payload")
    if not (body.get("text") or body.get("blocks") or body.get("attachments")):
        return Answer(400, "no_text")
    return Answer(200, "ok")


def _teams(request, match):
    """A Teams Workflows webhook: 202 and no body for a message carrying an Adaptive Card."""
    if request.query.get("sig") != "teamssig0123456789":
        return Answer(401, {"error": {"code": "DirectApiAuthorizationRequired"}})
    body = json.loads(request.body)
    attachment = (body.get("attachments") or [{}])[0]
    card = attachment.get("content") or {}
    if (
        body.get("type") != "message"
        or attachment.get("contentType") != "application/vnd.microsoft.card.adaptive"
        or card.get("type") != "AdaptiveCard"
        or not isinstance(card.get("body"), list)
    ):
        return Answer(400, {"error": {"code": "InvalidRequestContent"}})
    return Answer(202, b"")


def _discord(request, match):
    """Discord's execute-webhook: 204, or with ?wait=true 200 and the message it created."""
    if match.group(2) != "discord-secret-token_0123456789":
        return Answer(401, {"message": "Invalid Webhook Token", "code": 50027})
    body = json.loads(request.body)
    embeds = body.get("embeds", [])
    if len(embeds) > 10 or any(
        len(e.get("title", "")) > 256
        or len(e.get("description", "")) > 4096
        or not 0 <= e.get("color", 0) <= 0xFFFFFF
        for e in embeds
    ):
        return Answer(400, {"code": 50035, "message": "Invalid Form Body"})
    if request.query.get("wait") != "true":
        return Answer(204, b"")
    message = {
        "type": 0,
        "channel_id": "998877665544332211",
        "content": body.get("content", ""),
        "attachments": [],
        "embeds": [{"type": "rich", **e} for e in embeds],
        "id": DISCORD_MESSAGE_ID,
        "author": {"bot": True, "id": match.group(1), "username": body.get("username")},
        "webhook_id": match.group(1),
    }
    return Answer(200, message)


@pytest.fixture
def slack(provider):
    provider.route("POST", r"/services/T0001/B0002/(\w+)", _slack)
    return provider


@pytest.fixture
def teams(provider):
    provider.route("POST", TEAMS_PATH, _teams)
    return provider


@pytest.fixture
def discord(provider):
    provider.route("POST", r"/api/webhooks/(\d+)/([\w\-]+)", _discord)
    return provider


def make_channel(kind, url, name=None, **config):
    name = name or {"slack": "Ops Slack", "teams": "Ops Teams", "discord": "Ops Discord"}[kind]
    return NotificationChannel.objects.create(kind=kind, name=name, config={"url": url, **config})


@pytest.fixture
def slack_channel(slack):
    return make_channel("slack", slack.url + SLACK_PATH)


@pytest.fixture
def teams_channel(teams):
    return make_channel("teams", f"{teams.url}{TEAMS_PATH}?{TEAMS_QUERY}")


@pytest.fixture
def discord_channel(discord):
    return make_channel("discord", discord.url + DISCORD_PATH)


# --- the alarm path -----------------------------------------------------------------------


@pytest.fixture
def raise_to(make_policy, make_device, alice):
    """raise_to(channel, …): Alice's desk phone raises an alarm whose first step posts to the
    channel now; the step runs and its deliveries wait to be attempted."""

    def raise_(channel, *, title="Emergency key pressed", message="", severity="critical"):
        policy = make_policy([(0, [], [channel])], name=f"Post to {channel.name} {severity}")
        device, _ = make_device(f"Desk phone {severity}", person=alice, default_policy=policy)
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key=f"key-{severity}", title=title, message=message,
            severity=severity, device=device, actor=SYSTEM,
        ).alarm  # fmt: skip
        assert engine.run_due_step(alarm.pk)
        return alarm

    return raise_


def only_delivery(alarm, event="notify") -> Delivery:
    return Delivery.objects.get(alarm=alarm, event=event)


def admin_url(alarm) -> str:
    return f"{BASE}/admin/alarms/alarm/{alarm.pk}/change/"


def ack_path(url: str) -> str:
    return url.removeprefix(BASE)


def alarm_line(text: str) -> str:
    """The line of a rendered body that holds the alarm's message (HOSTILE_MESSAGE)."""
    return next(line for line in text.splitlines() if "script" in line)


def ack_by_link(client, url: str, name: str):
    """Open the channel's ACK link as a reader would, then press the button with a name."""
    page = client.get(ack_path(url))
    assert page.status_code == 200
    assert 'name="name"' in page.content.decode()
    return client.post(ack_path(url), {"name": name})


# --- Slack --------------------------------------------------------------------------------


def test_slack_gets_a_red_message_with_where_who_and_an_ack_button(slack, slack_channel, raise_to):
    alarm = raise_to(slack_channel, message="Caller is not answering.")

    assert send_pending(alarm) == ["sent"]

    subject = "[CRITICAL] Emergency key pressed — Clinic North / Reception"
    [request] = slack.requests
    assert request.path == SLACK_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "text": subject,
        "attachments": [{"color": "#B00020", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                f"*{subject}*\n*Where:* Clinic North / Reception\n*Who:* Alice\n"
                "*Device:* Desk phone critical\nCaller is not answering."
            )}},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"},
                 "url": ACK_URL, "style": "danger"},
                {"type": "button", "text": {"type": "plain_text", "text": "Open alarm"},
                 "url": admin_url(alarm)},
            ]},
        ]}],
    }  # fmt: skip


@pytest.mark.parametrize(
    "severity, colour",
    [("critical", "#B00020"), ("high", "#D35400"), ("warning", "#B7950B"), ("info", "#2E86C1")],
)
def test_slack_colours_the_message_by_severity(slack, slack_channel, raise_to, severity, colour):
    send_pending(raise_to(slack_channel, severity=severity))

    body = slack.requests[0].json
    assert body["attachments"][0]["color"] == colour
    assert body["text"].startswith(f"[{severity.upper()}] ")


def test_slack_records_status_answer_and_latency(slack, slack_channel, raise_to):
    alarm = raise_to(slack_channel)
    slack.routes.insert(
        0, ("POST", re.compile(SLACK_PATH + "$"), lambda r, m: Answer(200, "ok", delay=0.15))
    )

    send_pending(alarm)

    sent = only_delivery(alarm)
    assert (sent.status, sent.attempts, sent.error) == ("sent", 1, "")
    assert (sent.provider_status, sent.response, sent.provider_message_id) == ("HTTP 200", "ok", "")
    assert 150 <= sent.latency_ms < 2000
    assert sent.address == f"{slack.url}/…"  # the webhook's secret path is never shown


def test_the_channels_ack_link_acknowledges_in_the_readers_name(
    client, slack, slack_channel, raise_to
):
    alarm = raise_to(slack_channel)
    send_pending(alarm)
    url = slack.requests[0].json["attachments"][0]["blocks"][1]["elements"][0]["url"]

    page = client.get(ack_path(url))
    assert "This link was posted to Ops Slack" in page.content.decode()
    assert Alarm.objects.get(pk=alarm.pk).status == "triggered"  # opening changes nothing

    response = client.post(ack_path(url), {"name": "  Carol   Jones "})

    assert response.status_code == 200
    alarm.refresh_from_db()
    assert (alarm.status, alarm.acknowledged_by) == (
        "acknowledged",
        "Carol Jones (link in Ops Slack)",
    )
    link = AckLink.objects.get(alarm=alarm)
    assert (link.channel, link.person) == (slack_channel, None)
    assert list(
        alarm.events.filter(kind__in=["ack_link_opened", "acknowledged"]).values_list(
            "kind", "actor"
        )
    ) == [
        ("ack_link_opened", "someone (link in Ops Slack)"),
        ("acknowledged", "Carol Jones (link in Ops Slack)"),
    ]


def test_slack_is_told_of_the_ack_then_the_resolve_in_their_own_colours(
    client, slack, slack_channel, raise_to
):
    alarm = raise_to(slack_channel)
    send_pending(alarm)
    url = slack.requests[0].json["attachments"][0]["blocks"][1]["elements"][0]["url"]

    ack_by_link(client, url, "Carol")
    assert send_pending(alarm) == ["sent"]
    lifecycle.resolve(alarm.pk, Actor("Dana"))
    assert send_pending(alarm) == ["sent"]

    acked, resolved = (r.json for r in slack.requests[1:])
    subject = "Emergency key pressed — Clinic North / Reception"
    assert acked == {
        "text": f"Acknowledged: [CRITICAL] {subject}",
        "attachments": [{"color": "#7D3C98", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                f"*Acknowledged: [CRITICAL] {subject}*\n"
                "*Acknowledged* by Carol (link in Ops Slack)"
            )}},
        ]}],
    }  # fmt: skip
    assert resolved["attachments"][0]["color"] == "#1E8449"
    assert resolved["attachments"][0]["blocks"][0]["text"]["text"] == (
        f"*Resolved: [CRITICAL] {subject}*\n*Resolved* by Dana"
    )
    assert [(d.event, d.status, d.provider_status) for d in alarm.deliveries.order_by("pk")] == [
        ("notify", "sent", "HTTP 200"),
        ("acknowledged", "sent", "HTTP 200"),
        ("resolved", "sent", "HTTP 200"),
    ]


def test_slack_cancel_is_a_follow_up_too(slack, slack_channel, raise_to):
    alarm = raise_to(slack_channel)
    send_pending(alarm)

    lifecycle.cancel(alarm.pk, Actor("Dana"))
    send_pending(alarm)

    text = slack.requests[1].json["attachments"][0]["blocks"][0]["text"]["text"]
    assert text.endswith("*Cancelled* by Dana")
    assert slack.requests[1].json["attachments"][0]["color"] == "#1E8449"


@pytest.mark.parametrize(
    "status, answer", [(400, "invalid_payload"), (403, "invalid_token"), (404, "no_service")]
)
def test_slack_errors_fail_the_delivery_at_once(slack, slack_channel, raise_to, status, answer):
    alarm = raise_to(slack_channel)
    slack.fail(status, body=answer)

    assert send_pending(alarm) == ["failed"]

    failed = only_delivery(alarm)
    assert (failed.attempts, failed.provider_status) == (1, f"HTTP {status}")
    assert failed.error == f"HTTP {status}: {answer}"
    assert failed.next_attempt_at is None
    assert alarm.events.filter(kind="delivery_failed").count() == 1


def test_a_wrong_slack_token_is_answered_invalid_token_and_not_retried(slack, raise_to):
    channel = make_channel("slack", slack.url + "/services/T0001/B0002/revoked0000000")
    alarm = raise_to(channel)

    assert send_pending(alarm) == ["failed"]
    assert only_delivery(alarm).error == "HTTP 403: invalid_token"


def test_slack_rate_limit_waits_for_retry_after(settings, slack, slack_channel, raise_to):
    settings.DELIVERY_RETRY_BASE_SECONDS = 0.1
    alarm = raise_to(slack_channel)
    slack.fail(429, body="rate_limited", retry_after="30")

    before = timezone.now()
    assert send_pending(alarm) == ["pending"]

    waiting = only_delivery(alarm)
    assert waiting.provider_status == "HTTP 429"
    assert waiting.error == "HTTP 429: rate_limited"
    assert before + timedelta(seconds=30) <= waiting.next_attempt_at
    assert waiting.next_attempt_at <= timezone.now() + timedelta(seconds=31)

    Delivery.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    assert send_pending(alarm) == ["sent"]
    assert only_delivery(alarm).attempts == 2


def test_a_connection_failure_never_stores_the_webhooks_secret_path(raise_to):
    channel = make_channel("slack", "http://127.0.0.1:9" + SLACK_PATH)
    alarm = raise_to(channel)

    assert send_pending(alarm) == ["pending"]

    waiting = only_delivery(alarm)
    assert waiting.error.startswith("connection failed: ConnectionError")
    stored = " ".join([waiting.error, waiting.response, waiting.message, waiting.address])
    assert "slacksecret" not in stored
    assert "slacksecret" not in " ".join(alarm.events.values_list("text", flat=True))


def test_hostile_text_cannot_ping_or_fake_a_link_in_slack(slack, slack_channel, raise_to):
    alarm = raise_to(slack_channel, title=HOSTILE_TITLE, message=HOSTILE_MESSAGE)

    send_pending(alarm)

    body = json.loads(slack.requests[0].body)  # still valid JSON
    shown = body["text"] + body["attachments"][0]["blocks"][0]["text"]["text"]
    # Slack reads mentions, channel pings and links only inside <…>: none is left.
    assert "<" not in shown and ">" not in shown
    assert "Fire &" in shown and "script&" in shown


def test_slack_gets_hostile_text_escaped_once(slack, slack_channel, raise_to):
    alarm = raise_to(slack_channel, title=HOSTILE_TITLE, message=HOSTILE_MESSAGE)
    send_pending(alarm)
    lifecycle.resolve(alarm.pk, Actor("Dana <dispatch> & co"))
    send_pending(alarm)

    notified, resolved = (json.loads(r.body) for r in slack.requests)
    title = (
        "Fire &lt;!channel&gt; &lt;@U123&gt; @everyone [click](http://evil) "
        '\u200b*\u200bbold\u200b*\u200b "q" \\ &amp; co'
    )
    assert notified["text"] == f"[CRITICAL] {title} — Clinic North / Reception"
    assert notified["attachments"][0]["blocks"][0]["text"]["text"].endswith(
        "\n&lt;script&gt;alert(1)&lt;/script&gt; \u200b~\u200bstrike\u200b~\u200b "
        "\u200b`\u200bcode\u200b`\u200b # head"
    )
    assert resolved["attachments"][0]["blocks"][0]["text"]["text"].endswith(
        "*Resolved* by Dana &lt;dispatch&gt; &amp; co"
    )


# Slack mrkdwn's formatting characters; one with a zero-width space on each side is shown as
# itself (it can neither open nor close a format).
SLACK_MARK = re.compile(r"(?<!\u200b)[*_~`]|[*_~`](?!\u200b)|^&gt;", re.M)


def slack_marks(text: str) -> str:
    """The formatting characters Slack would act on, in order."""
    return "".join(SLACK_MARK.findall(text))


def test_slack_shows_formatting_characters_in_alarm_text_as_themselves(
    slack, slack_channel, raise_to
):
    alarm = raise_to(
        slack_channel,
        title="Pump *2* down_now ~x~ `y`",
        message="> not a quote\n```not code``` *_both_*\nline_with_underscores",
    )

    send_pending(alarm)

    section = json.loads(slack.requests[0].body)["attachments"][0]["blocks"][0]["text"]["text"]
    # Only the template's own bold is left: the subject and the field names.
    assert slack_marks(section) == "*" * 8
    assert section.startswith("*[CRITICAL] Pump \u200b*\u200b2\u200b*\u200b down\u200b_")
    shown = section.replace("\u200b", "")
    assert "Pump *2* down_now ~x~ `y`" in shown
    assert "&gt; not a quote\n```not code``` *_both_*\nline_with_underscores" in shown


def test_slack_keeps_a_quote_sign_in_alarm_text_from_starting_a_quote(
    slack, slack_channel, raise_to
):
    alarm = raise_to(slack_channel, message="> quoted\nnext")

    send_pending(alarm)

    section = json.loads(slack.requests[0].body)["attachments"][0]["blocks"][0]["text"]["text"]
    assert "\n\u200b&gt; quoted\nnext" in section
    assert not re.search(r"(?m)^&gt;", section)


# --- Microsoft Teams ----------------------------------------------------------------------


def test_teams_gets_an_adaptive_card_with_where_who_and_an_ack_action(
    teams, teams_channel, raise_to
):
    alarm = raise_to(teams_channel, message="Caller is not answering.")

    assert send_pending(alarm) == ["sent"]

    request = teams.requests[0]
    assert request.query["sig"] == "teamssig0123456789"
    assert request.json == {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": [
                    {"type": "Container", "style": "attention", "bleed": True, "items": [
                        {"type": "TextBlock", "weight": "Bolder", "size": "Medium", "wrap": True,
                         "text": "[CRITICAL] Emergency key pressed — Clinic North / Reception"},
                    ]},
                    {"type": "TextBlock", "wrap": True, "text": (
                        "**Where:** Clinic North / Reception\n**Who:** Alice\n"
                        "**Device:** Desk phone critical\nCaller is not answering."
                    )},
                ],
                "actions": [
                    {"type": "Action.OpenUrl", "title": "Acknowledge", "url": ACK_URL},
                    {"type": "Action.OpenUrl", "title": "Open alarm", "url": admin_url(alarm)},
                ],
            },
        }],
    }  # fmt: skip
    sent = only_delivery(alarm)
    assert (sent.provider_status, sent.response, sent.error) == ("HTTP 202", "", "")
    assert sent.latency_ms is not None


@pytest.mark.parametrize(
    "severity, style",
    [("critical", "attention"), ("high", "attention"), ("warning", "warning"), ("info", "accent")],
)
def test_teams_styles_the_card_by_severity(teams, teams_channel, raise_to, severity, style):
    send_pending(raise_to(teams_channel, severity=severity))

    card = teams.requests[0].json["attachments"][0]["content"]
    assert card["body"][0]["style"] == style


def test_a_classic_teams_incoming_webhook_answering_1_counts_as_sent(provider, raise_to):
    provider.route(
        "POST",
        r"/webhookb2/[\w@\-]+/IncomingWebhook/\w+/[\w\-]+",
        lambda request, match: Answer(200, "1"),
    )
    url = provider.url + "/webhookb2/abc@def/IncomingWebhook/0123abcd/guid-0001"
    alarm = raise_to(make_channel("teams", url))

    assert send_pending(alarm) == ["sent"]
    assert (only_delivery(alarm).provider_status, only_delivery(alarm).response) == (
        "HTTP 200",
        "1",
    )


def test_teams_follow_ups_change_the_cards_style_and_drop_the_ack_action(
    client, teams, teams_channel, raise_to
):
    alarm = raise_to(teams_channel)
    send_pending(alarm)
    card = teams.requests[0].json["attachments"][0]["content"]
    ack_by_link(client, card["actions"][0]["url"], "Carol")
    send_pending(alarm)
    lifecycle.resolve(alarm.pk, Actor("Dana"))
    send_pending(alarm)

    acked, resolved = (r.json["attachments"][0]["content"] for r in teams.requests[1:])
    assert acked["body"] == [
        {"type": "Container", "style": "emphasis", "bleed": True, "items": [
            {"type": "TextBlock", "weight": "Bolder", "size": "Medium", "wrap": True,
             "text": "Acknowledged: [CRITICAL] Emergency key pressed — Clinic North / Reception"},
        ]},
        {"type": "TextBlock", "wrap": True,
         "text": "**Acknowledged** by Carol \\(link in Ops Teams\\)"},
    ]  # fmt: skip
    assert acked["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open alarm", "url": admin_url(alarm)}
    ]
    assert resolved["body"][0]["style"] == "good"
    assert resolved["body"][1]["text"] == "**Resolved** by Dana"
    assert Alarm.objects.get(pk=alarm.pk).acknowledged_by == "Carol (link in Ops Teams)"


def test_teams_rejecting_the_card_fails_the_delivery(teams, teams_channel, raise_to):
    alarm = raise_to(teams_channel)
    teams.fail(400, body={"error": {"code": "InvalidRequestContent"}})

    assert send_pending(alarm) == ["failed"]
    assert only_delivery(alarm).error == 'HTTP 400: {"error": {"code": "InvalidRequestContent"}}'


def test_teams_server_error_is_retried(teams, teams_channel, raise_to):
    alarm = raise_to(teams_channel)
    teams.fail(502, body="Bad Gateway")

    assert send_pending(alarm) == ["pending"]
    waiting = only_delivery(alarm)
    assert (waiting.attempts, waiting.provider_status) == (1, "HTTP 502")
    assert "teamssig" not in waiting.error + waiting.response


def test_hostile_text_cannot_ping_or_fake_a_link_in_teams(teams, teams_channel, raise_to):
    alarm = raise_to(teams_channel, title=HOSTILE_TITLE, message=HOSTILE_MESSAGE)

    send_pending(alarm)

    card = json.loads(teams.requests[0].body)["attachments"][0]["content"]
    shown = card["body"][0]["items"][0]["text"] + alarm_line(card["body"][1]["text"])
    assert not UNESCAPED_LINK.search(shown)
    assert not UNESCAPED_MARKUP.search(shown)
    assert "@everyone" not in shown
    assert [action["title"] for action in card["actions"]] == ["Acknowledge", "Open alarm"]


def test_teams_gets_hostile_text_markdown_escaped_once(teams, teams_channel, raise_to):
    alarm = raise_to(teams_channel, title=HOSTILE_TITLE, message=HOSTILE_MESSAGE)

    send_pending(alarm)

    card = json.loads(teams.requests[0].body)["attachments"][0]["content"]
    assert card["body"][0]["items"][0]["text"] == (
        "[CRITICAL] Fire \\<\\!channel\\> \\<@\u200bU123\\> @\u200beveryone "
        '\\[click\\]\\(http://evil\\) \\*bold\\* "q" \\\\ & co — Clinic North / Reception'
    )
    assert card["body"][1]["text"].endswith(
        "\n\\<script\\>alert\\(1\\)\\</script\\> \\~strike\\~ \\`code\\` \\# head"
    )


def test_teams_shows_a_line_of_alarm_text_starting_with_a_number_as_it_is(
    teams, teams_channel, raise_to
):
    alarm = raise_to(teams_channel, message="1. pump down\n2. valve open\nroom 1. floor")

    send_pending(alarm)

    card = json.loads(teams.requests[0].body)["attachments"][0]["content"]
    assert card["body"][1]["text"].endswith("\n1\\. pump down\n2\\. valve open\nroom 1. floor")


def test_teams_shows_a_line_of_alarm_text_starting_with_a_plus_as_it_is(
    teams, teams_channel, raise_to
):
    alarm = raise_to(teams_channel, message="+ pump down")

    send_pending(alarm)

    card = json.loads(teams.requests[0].body)["attachments"][0]["content"]
    assert card["body"][1]["text"].endswith("\n\\+ pump down")


# --- Discord ------------------------------------------------------------------------------


def test_discord_gets_an_embed_and_we_keep_its_message_id(discord, discord_channel, raise_to):
    alarm = raise_to(discord_channel, message="Caller is not answering.")

    assert send_pending(alarm) == ["sent"]

    request = discord.requests[0]
    assert (request.path, request.query) == (DISCORD_PATH, {"wait": "true"})
    assert request.json == {
        "username": "Alarm broker",
        "embeds": [{
            "title": "[CRITICAL] Emergency key pressed — Clinic North / Reception",
            "description": Matches(
                re.escape(
                    "**Where:** Clinic North / Reception\n**Who:** Alice\n"
                    "**Device:** Desk phone critical\nCaller is not answering.\n[Acknowledge]("
                )
                + ACK_URL.pattern.pattern
                + re.escape(f")\n[Open alarm]({admin_url(alarm)})")
            ),
            "color": 0xB00020,
            "url": admin_url(alarm),
            "timestamp": ANY,
        }],
        "allowed_mentions": {"parse": []},
    }  # fmt: skip
    sent_at = datetime.fromisoformat(request.json["embeds"][0]["timestamp"])
    assert abs(timezone.now() - sent_at) < timedelta(seconds=30)
    sent = only_delivery(alarm)
    assert (sent.provider_status, sent.provider_message_id) == ("HTTP 200", DISCORD_MESSAGE_ID)
    assert sent.latency_ms is not None and sent.latency_ms >= 0


@pytest.mark.parametrize(
    "severity, colour",
    [("critical", 0xB00020), ("high", 0xD35400), ("warning", 0xB7950B), ("info", 0x2E86C1)],
)
def test_discord_colours_the_embed_by_severity(
    discord, discord_channel, raise_to, severity, colour
):
    send_pending(raise_to(discord_channel, severity=severity))

    assert discord.requests[0].json["embeds"][0]["color"] == colour


def test_discord_keeps_a_thread_id_already_in_the_url(discord, raise_to):
    channel = make_channel("discord", discord.url + DISCORD_PATH + "?thread_id=42")

    send_pending(raise_to(channel))

    assert discord.requests[0].query == {"thread_id": "42", "wait": "true"}


def test_discord_follow_ups_change_the_colour(client, discord, discord_channel, raise_to):
    alarm = raise_to(discord_channel)
    send_pending(alarm)
    ack_url = re.search(
        r"\[Acknowledge\]\((\S+)\)", discord.requests[0].json["embeds"][0]["description"]
    ).group(1)
    ack_by_link(client, ack_url, "Carol")
    send_pending(alarm)
    lifecycle.resolve(alarm.pk, Actor("Dana"))
    send_pending(alarm)

    acked, resolved = (r.json["embeds"][0] for r in discord.requests[1:])
    assert (
        acked["title"]
        == "Acknowledged: [CRITICAL] Emergency key pressed — Clinic North / Reception"
    )
    assert acked["description"] == (
        f"**Acknowledged** by Carol \\(link in Ops Discord\\)\n[Open alarm]({admin_url(alarm)})"
    )
    assert acked["color"] == 0x7D3C98
    assert resolved["color"] == 0x1E8449
    assert resolved["description"].startswith("**Resolved** by Dana\n")
    follow_ups = alarm.deliveries.exclude(event="notify").order_by("pk")
    assert [(d.event, d.provider_message_id) for d in follow_ups] == [
        ("acknowledged", DISCORD_MESSAGE_ID),
        ("resolved", DISCORD_MESSAGE_ID),
    ]


@pytest.mark.parametrize("header", ["2", None])
def test_discord_rate_limit_waits_as_long_as_discord_asks(
    settings, discord, discord_channel, raise_to, header
):
    settings.DELIVERY_RETRY_BASE_SECONDS = 0.1
    alarm = raise_to(discord_channel)
    limited = {"message": "You are being rate limited.", "retry_after": 1.5, "global": False}
    discord.fail(429, body=limited, retry_after=header)

    before = timezone.now()
    assert send_pending(alarm) == ["pending"]

    wait = 2 if header else 1.5  # the header when there is one, else the JSON's retry_after
    waiting = only_delivery(alarm)
    assert waiting.provider_status == "HTTP 429"
    assert "You are being rate limited." in waiting.error
    assert before + timedelta(seconds=wait) <= waiting.next_attempt_at
    assert waiting.next_attempt_at <= timezone.now() + timedelta(seconds=wait + 1)


def test_discord_invalid_token_fails_at_once_without_storing_the_token(discord, raise_to):
    channel = make_channel("discord", discord.url + "/api/webhooks/112233445566778899/revoked0")
    alarm = raise_to(channel)

    assert send_pending(alarm) == ["failed"]

    failed = only_delivery(alarm)
    assert failed.provider_status == "HTTP 401"
    assert failed.error == 'HTTP 401: {"message": "Invalid Webhook Token", "code": 50027}'
    assert "revoked0" not in failed.error + failed.address + failed.response


def test_hostile_text_cannot_ping_or_fake_a_link_in_discord(discord, discord_channel, raise_to):
    alarm = raise_to(discord_channel, title=HOSTILE_TITLE, message=HOSTILE_MESSAGE)

    send_pending(alarm)

    body = json.loads(discord.requests[0].body)
    assert body["allowed_mentions"] == {"parse": []}  # nobody is pinged, whatever the text
    embed = body["embeds"][0]
    links = UNESCAPED_LINK.findall(embed["title"] + embed["description"])
    assert [label for label, _ in links] == ["Acknowledge", "Open alarm"]
    shown = embed["title"] + alarm_line(embed["description"])
    assert not UNESCAPED_MARKUP.search(shown)
    assert "@everyone" not in embed["title"] + embed["description"]


def test_discord_gets_hostile_text_markdown_escaped_once(discord, discord_channel, raise_to):
    alarm = raise_to(discord_channel, title=HOSTILE_TITLE, message=HOSTILE_MESSAGE)

    send_pending(alarm)

    embed = json.loads(discord.requests[0].body)["embeds"][0]
    assert embed["title"] == (
        "[CRITICAL] Fire \\<\\!channel\\> \\<@\u200bU123\\> @\u200beveryone "
        '\\[click\\]\\(http://evil\\) \\*bold\\* "q" \\\\ & co — Clinic North / Reception'
    )
    assert (
        "\n\\<script\\>alert\\(1\\)\\</script\\> \\~strike\\~ \\`code\\` \\# head\n"
        in (embed["description"])
    )


def test_discord_shows_a_line_of_alarm_text_starting_with_a_number_as_it_is(
    discord, discord_channel, raise_to
):
    alarm = raise_to(discord_channel, message="1. pump down\n2. valve open")

    send_pending(alarm)

    embed = json.loads(discord.requests[0].body)["embeds"][0]
    assert "\n1\\. pump down\n2\\. valve open\n" in embed["description"]


# --- all three ----------------------------------------------------------------------------


def test_no_usable_channel_ack_link_is_stored_when_messages_leave_the_machine(
    settings, discord, discord_channel, raise_to
):
    alarm = raise_to(discord_channel)

    send_pending(alarm)

    ack_url = re.search(
        r"\[Acknowledge\]\((\S+)\)", discord.requests[0].json["embeds"][0]["description"]
    ).group(1)
    sent = only_delivery(alarm)
    assert ack_path(ack_url) not in sent.message + sent.response + sent.error
