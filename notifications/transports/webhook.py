"""Generic JSON webhook: POSTs the alarm as JSON, signed with HMAC-SHA256 when a secret is set."""

import hashlib
import hmac
import json

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from .base import Transport, post_json


class WebhookTransport(Transport):
    @classmethod
    def clean_config(cls, config: dict) -> dict:
        if not isinstance(config, dict):
            raise ValidationError("The config must be a JSON object.")
        url = config.get("url", "")
        URLValidator(schemes=["http", "https"], message="'url' must be an http(s) URL.")(url)
        headers = config.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValidationError("'headers' must be an object of strings.")
        if not isinstance(config.get("secret", ""), str):
            raise ValidationError("'secret' must be a string.")
        return config

    def address_for(self, delivery) -> str:
        return self.config.get("url", "")

    def send(self, delivery, message) -> str:
        body = json.dumps(message.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", **self.config.get("headers", {})}
        if self.config.get("secret"):
            digest = hmac.new(self.config["secret"].encode(), body, hashlib.sha256).hexdigest()
            headers["X-Alarm-Signature"] = f"sha256={digest}"
        response = post_json(self.config["url"], message.payload, headers=headers, body=body)
        return f"HTTP {response.status_code}: {response.text[:500]}"
