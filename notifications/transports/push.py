"""Push to a person's phone through a self-hosted server, no vendor account: ntfy (a topic per
person, action buttons that acknowledge or claim) and Gotify (an application per person).

A push's buttons POST to the recipient's own ACK link (`/a/<token>/acknowledge`, `/claim`):
the link is theirs alone and an action through it is taken once (`alarms.views.ack_action`)."""

from .base import NOTIFY, TEST, Field, Transport, answered, http, json_of

# ntfy's priorities: 5 ("urgent") breaks through do-not-disturb on Android.
NTFY_PRIORITY = {"critical": 5, "high": 4, "warning": 3, "info": 2}
# Gotify's: 8 and above pop up with sound on Android.
GOTIFY_PRIORITY = {"critical": 10, "high": 8, "warning": 5, "info": 2}
# ntfy shows a tag that names an emoji as that emoji before the title.
NTFY_TAGS = {"critical": "rotating_light", "high": "warning", "warning": "large_orange_diamond",
             "info": "information_source"}  # fmt: skip
QUIET = 2  # a stand-down, a follow-up: nobody needs waking for it


def severity_of(out) -> str:
    return getattr(out.alarm, "severity", "") or "info"


def wakes(out) -> bool:
    """Whether the message asks its reader to act (a page or a test of one); a stand-down or
    a follow-up does not ring through the night."""
    return out.event in (NOTIFY, TEST)


class NtfyTransport(Transport):
    label = "Push (ntfy)"
    reaches = "ntfy"
    template_dir = "push"
    config_fields = (
        Field("url", "url", required=True, help="Base URL of the ntfy server."),
        Field("token", secret=True, help="An access token that may publish (tk_…)."),
        Field("to", help="A topic to publish to when used as a channel."),
        Field("actions", "bool", default=True,
              help="Buttons to acknowledge and say 'on my way' on each page."),
    )  # fmt: skip

    def address_for(self, person=None) -> str:
        # A topic is read by whoever knows it: the row names the person, not the topic.
        if person is not None:
            return f"ntfy:{person.pk}" if person.ntfy_topic else ""
        return self.config.get("to", "")

    def send(self, out):
        severity = severity_of(out)
        urgent = wakes(out)
        body = {
            "topic": out.person.ntfy_topic if out.person is not None else out.address,
            "title": out.message.subject[:250],
            "message": out.message.text.strip(),
            "priority": NTFY_PRIORITY.get(severity, 3) if urgent else QUIET,
            "tags": [NTFY_TAGS.get(severity, "bell"), severity] if urgent else ["white_check_mark"],
        }
        if out.message.ack_url:
            body["click"] = out.message.ack_url
            if self.config.get("actions", True):
                body["actions"] = ntfy_actions(out.message.ack_url)
        token = self.config.get("token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = http("POST", self.config["url"].rstrip("/") + "/", json=body, headers=headers)
        return answered(response, json_of(response).get("id", ""))


def ntfy_actions(ack_url: str) -> list[dict]:
    """The page's buttons: an `http` action each, a POST to the recipient's own link (no body
    to forge: the token is the capability); `clear` removes the notification once it worked."""
    return [
        {
            "action": "http",
            "label": label,
            "url": f"{ack_url}/{what}",
            "method": "POST",
            "clear": True,
        }  # fmt: skip
        for label, what in (("Acknowledge", "acknowledge"), ("On my way", "claim"))
    ]


class GotifyTransport(Transport):
    label = "Push (Gotify)"
    reaches = "gotify"
    template_dir = "push"
    config_fields = (
        Field("url", "url", required=True, help="Base URL of the Gotify server."),
        Field("token", secret=True,
              help="An application token to post with when used as a channel."),
    )  # fmt: skip

    def address_for(self, person=None) -> str:
        # The person's application token is a credential: the row names the person instead.
        if person is not None:
            return f"gotify:{person.pk}" if person.gotify_token else ""
        return "gotify:channel" if self.config.get("token") else ""

    def send(self, out):
        token = out.person.gotify_token if out.person is not None else self.config.get("token")
        urgent = wakes(out)
        body = {
            "title": out.message.subject[:250],
            "message": out.message.text.strip(),
            "priority": GOTIFY_PRIORITY.get(severity_of(out), 5) if urgent else QUIET,
            "extras": {"client::display": {"contentType": "text/plain"}},
        }
        if out.message.ack_url:
            body["extras"]["client::notification"] = {"click": {"url": out.message.ack_url}}
        url = self.config["url"].rstrip("/") + "/message"
        response = http("POST", url, json=body, headers={"X-Gotify-Key": token or ""})
        return answered(response, json_of(response).get("id", ""))
