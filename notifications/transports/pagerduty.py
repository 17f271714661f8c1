"""PagerDuty Events API v2: trigger on a step, acknowledge and resolve with the alarm.

The alarm's id is the dedup_key, so every event about one alarm lands on one PagerDuty alert.
"""

from .base import ACKNOWLEDGED, CLOSING, FOLLOW_UPS, Field, Transport, answered, http, json_of

SEVERITY = {"critical": "critical", "high": "error", "warning": "warning", "info": "info"}


class PagerDutyTransport(Transport):
    label = "PagerDuty Events API v2"
    follows_up = FOLLOW_UPS
    ordered = True
    outbox = True
    test_resolves = True
    ack_link = False
    template_dir = "pagerduty"
    config_fields = (
        Field("routing_key", required=True, secret=True, help="The integration key."),
        Field("url", "url", default="https://events.pagerduty.com/v2/enqueue"),
    )

    def send(self, out):
        alarm, facts = out.alarm, out.message.payload["alarm"]
        body = {"routing_key": self.config["routing_key"], "dedup_key": str(alarm.pk)}
        if out.event == ACKNOWLEDGED:
            body["event_action"] = "acknowledge"
        elif out.event in CLOSING:
            body["event_action"] = "resolve"
        else:
            body["event_action"] = "trigger"
            body["payload"] = {
                "summary": out.message.subject[:1024],
                "source": facts["device"] or facts["location"] or "alarm broker",
                "severity": SEVERITY.get(alarm.severity, "critical"),
                "timestamp": facts["created_at"],
                "component": facts["room"],
                "group": facts["site"],
                "class": alarm.source,
                "custom_details": {
                    "message": alarm.message,
                    "person": facts["person"],
                    "location": facts["location"],
                    "occurrences": alarm.occurrences,
                    "labels": facts["labels"],
                    "escalation": out.message.payload["escalation"],
                },
            }
            body["links"] = [{"href": facts["url"], "text": "Alarm in the broker"}]
            body["client"], body["client_url"] = "Alarm broker", facts["url"]
            # Optional fields are strings when present, never null.
            body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
        response = http("POST", self.config["url"], json=body)
        return answered(response, json_of(response).get("dedup_key", ""))
