"""SMS through Twilio's Messages API (or anything that speaks it, at a configured base URL)."""

from django.core.exceptions import ValidationError

from .base import Field, Transport, answered, http, json_of

MAX_BODY = 1600  # Twilio refuses longer bodies


class TwilioTransport(Transport):
    label = "SMS through Twilio"
    reaches = "sms"
    template_dir = "sms"
    config_fields = (
        Field("account_sid", required=True),
        Field("auth_token", required=True, secret=True),
        Field("from", "phone", help="Sender number; or use messaging_service_sid."),
        Field("messaging_service_sid"),
        Field("base_url", "url", default="https://api.twilio.com"),
        Field("to", "phone", help="The number to text when used as a channel."),
    )

    @classmethod
    def check_config(cls, config):
        if not config.get("from") and not config.get("messaging_service_sid"):
            raise ValidationError("Set 'from' or 'messaging_service_sid'.")
        return config

    def send(self, out):
        sid = self.config["account_sid"]
        form = {"To": out.address, "Body": out.message.text.strip()[:MAX_BODY]}
        if self.config.get("messaging_service_sid"):
            form["MessagingServiceSid"] = self.config["messaging_service_sid"]
        else:
            form["From"] = self.config["from"]
        url = f"{self.config['base_url'].rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        response = http("POST", url, data=form, auth=(sid, self.config["auth_token"]))
        return answered(response, json_of(response).get("sid", ""))
