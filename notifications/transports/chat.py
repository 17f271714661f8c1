"""Chat rooms through incoming webhooks: Slack, Microsoft Teams and Discord.

Each gets a rich message in its own format: severity colour, where and who, the ACK link, and
a short follow-up when the alarm is acknowledged or closed. Alarm text is escaped for each
format so it can neither mention a whole channel, fake a link nor change the formatting.
"""

import re

from .base import (
    ACKNOWLEDGED,
    CLOSING,
    FOLLOW_UPS,
    NOTIFY,
    TEST,
    Field,
    Transport,
    answered,
    http,
    json_of,
)

# Severity colours, and one each for the follow-ups.
COLOURS = {
    "critical": "#B00020", "high": "#D35400", "warning": "#B7950B", "info": "#2E86C1",
    ACKNOWLEDGED: "#7D3C98", "closed": "#1E8449",
}  # fmt: skip

MARKDOWN_SPECIAL = re.compile(r"([\\`*_~|>#\[\]()<!+-])")
# "1. " at the start of a line makes a numbered list (Teams and Discord).
MARKDOWN_NUMBERED = re.compile(r"^(\d+)\.", re.M)
# Slack's mrkdwn has no escape character. A zero-width space on each side of a formatting
# character keeps it from opening or closing bold, italics, strike-through or code,
# whether Slack's parser takes the space for a space or for a letter, while every client shows
# the character itself (a look-alike such as U+2217 shows another glyph, and is copied as one).
SLACK_FORMATTING = re.compile(r"([*_~`])")
# A quote is a > at the start of a line (escaped &gt; by then); a zero-width space before it
# leaves it where it is.
SLACK_QUOTE = re.compile(r"^&gt;", re.M)
ZERO_WIDTH_SPACE = "\u200b"


def colour(out) -> str:
    if out.event == ACKNOWLEDGED:
        return COLOURS[ACKNOWLEDGED]
    if out.event in CLOSING:
        return COLOURS["closed"]
    return COLOURS.get(out.alarm.severity, COLOURS["critical"])


def markdown_escape(text: str) -> str:
    """Backslash-escape markdown, and break @mentions (@everyone, @here, <@id>)."""
    text = MARKDOWN_NUMBERED.sub(r"\1\\.", MARKDOWN_SPECIAL.sub(r"\\\1", text))
    return text.replace("@", "@" + ZERO_WIDTH_SPACE)


def slack_escape(text: str) -> str:
    """Escape Slack's control characters (&, <, >) and break its formatting characters."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = SLACK_FORMATTING.sub(ZERO_WIDTH_SPACE + r"\1" + ZERO_WIDTH_SPACE, text)
    return SLACK_QUOTE.sub(ZERO_WIDTH_SPACE + "&gt;", text)


class ChatTransport(Transport):
    follows_up = FOLLOW_UPS
    config_fields = (Field("url", "url", required=True, secret=True, help="The webhook URL."),)

    def links(self, out) -> list[tuple[str, str]]:
        links = [("Acknowledge", out.message.ack_url)] if out.message.ack_url else []
        return links + [("Open alarm", out.message.payload["alarm"]["url"])]


class SlackTransport(ChatTransport):
    label = "Slack"
    template_dir = "slack"

    escape = staticmethod(slack_escape)

    def send(self, out):
        subject, text = out.message.subject, out.message.text.strip()
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{subject}*\n{text}"[:3000]}}
        ]
        if out.event in (NOTIFY, TEST):
            blocks.append({"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url,
                 **({"style": "danger"} if label == "Acknowledge" else {})}
                for label, url in self.links(out)
            ]})  # fmt: skip
        body = {"text": subject, "attachments": [{"color": colour(out), "blocks": blocks}]}
        return answered(http("POST", self.config["url"], json=body))


class TeamsTransport(ChatTransport):
    label = "Microsoft Teams"
    template_dir = "teams"
    escape = staticmethod(markdown_escape)

    STYLES = {"critical": "attention", "high": "attention", "warning": "warning", "info": "accent"}

    def send(self, out):
        style = self.STYLES.get(out.alarm.severity, "attention")
        if out.event == ACKNOWLEDGED:
            style = "emphasis"
        elif out.event in CLOSING:
            style = "good"
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "msteams": {"width": "Full"},
            "body": [
                {"type": "Container", "style": style, "bleed": True, "items": [
                    {"type": "TextBlock", "text": out.message.subject, "weight": "Bolder",
                     "size": "Medium", "wrap": True},
                ]},
                {"type": "TextBlock", "text": out.message.text.strip(), "wrap": True},
            ],
            "actions": [{"type": "Action.OpenUrl", "title": label, "url": url}
                        for label, url in self.links(out)],
        }  # fmt: skip
        body = {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
            ],
        }
        return answered(http("POST", self.config["url"], json=body))


class DiscordTransport(ChatTransport):
    label = "Discord"
    template_dir = "discord"
    escape = staticmethod(markdown_escape)
    config_fields = ChatTransport.config_fields + (Field("username", default="Alarm broker"),)

    def send(self, out):
        text = out.message.text.strip()
        for label, url in self.links(out):
            text += f"\n[{label}]({url})"
        embed = {
            "title": out.message.subject[:256],
            "description": text[:4096],
            "color": int(colour(out).lstrip("#"), 16),
            "url": out.message.payload["alarm"]["url"],
            "timestamp": out.message.payload["sent_at"],
        }
        body = {
            "username": self.config.get("username", "Alarm broker"),
            "embeds": [embed],
            # Nobody is pinged, whatever the alarm text says.
            "allowed_mentions": {"parse": []},
        }
        # wait=true makes Discord answer with the message (and its id) instead of 204.
        url = self.config["url"] + ("&" if "?" in self.config["url"] else "?") + "wait=true"
        response = http("POST", url, json=body, retry_after_from_body=_discord_retry_after)
        return answered(response, json_of(response).get("id", ""))


def _discord_retry_after(response) -> float | None:
    value = json_of(response).get("retry_after")
    return float(value) if isinstance(value, (int, float)) else None
