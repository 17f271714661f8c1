"""Signal messages through a signal-cli-rest-api server (`POST /v2/send`)."""

from .base import Field, Transport, answered, http, json_of


class SignalTransport(Transport):
    label = "Signal"
    reaches = "signal"
    template_dir = "signal"
    config_fields = (
        Field("url", "url", required=True, help="Base URL of the signal-cli-rest-api server."),
        Field("number", "phone", required=True, help="The registered sender number."),
        Field("to", help="A number or group id to message when used as a channel."),
        Field("headers", "dict", default={}, secret=True, help="E.g. an Authorization header."),
        Field("receive", "bool", default=True, help="Fetch replies to this number."),
    )

    def send(self, out):
        body = {
            "message": out.message.text.strip(),
            "number": self.config["number"],
            "recipients": [out.address],
        }
        url = self.config["url"].rstrip("/") + "/v2/send"
        response = http("POST", url, json=body, headers=self.config.get("headers", {}))
        return answered(response, json_of(response).get("timestamp", ""))
