"""SMS through any HTTP gateway: URL, method, format and parameters are the channel's config.

Parameter values may hold the placeholders {to}, {text}, {subject}, {severity} and {alarm_id};
they are filled in and then encoded by the chosen format (JSON, form or query string), so alarm
text can never break the request's syntax.
"""

from .base import Field, Transport, answered, http, json_of

PLACEHOLDERS = ("to", "text", "subject", "severity", "alarm_id")


def dig(body, path: str):
    """The value at a dotted path ("messages.0.id") of a JSON answer, or ''."""
    for part in filter(None, path.split(".")):
        if isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        elif isinstance(body, dict) and part in body:
            body = body[part]
        else:
            return ""
    return body if isinstance(body, (str, int)) else ""


class SmsHttpTransport(Transport):
    label = "SMS through an HTTP gateway"
    reaches = "sms"
    template_dir = "sms"
    config_fields = (
        Field("url", "url", required=True, secret=True, help="Often carries an API key."),
        Field("method", "choice", default="POST", choices=("POST", "GET", "PUT")),
        Field("format", "choice", default="json", choices=("json", "form", "query")),
        Field(
            "params",
            "dict",
            default={"to": "{to}", "text": "{text}"},
            help="Request parameters; values may use "
            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
        ),
        Field("headers", "dict", default={}, secret=True, help="E.g. an Authorization header."),
        Field(
            "message_id_field", default="", help="Dotted path of the message id in the JSON answer."
        ),
        Field("to", "phone", help="The number to text when used as a channel."),
        Field(
            "inbound_token",
            secret=True,
            help="Replies: the gateway forwards incoming messages to /v1/replies/sms/<this>.",
        ),
        Field("inbound_from_field", help="Replies: the sender's field name (default from)."),
        Field("inbound_text_field", help="Replies: the text's field name (default text)."),
        Field("inbound_id_field", help="Replies: the message id's field name (default id)."),
    )

    def send(self, out):
        values = {
            "to": out.address,
            "text": out.message.text.strip(),
            "subject": out.message.subject,
            # No alarm: a message about shifts (a reminder, a hand-off).
            "severity": out.alarm.severity if out.alarm else "",
            "alarm_id": str(out.alarm.pk) if out.alarm else "",
        }
        params = {key: _fill(template, values) for key, template in self.config["params"].items()}
        body = {
            "json": {"json": params},
            "form": {"data": params},
            "query": {"params": params},
        }[self.config.get("format", "json")]
        response = http(
            self.config.get("method", "POST"),
            self.config["url"],
            headers=self.config.get("headers", {}),
            **body,
        )
        message_id = dig(json_of(response), self.config.get("message_id_field", ""))
        return answered(response, message_id)


def _fill(template: str, values: dict) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template
