"""Forward raise and clear to another alarm broker (a central registry of many sites).

Uses the upstream's own API, `POST /v1/alarms/raise|clear`, with a device token it issued to
this site. Our alarm id is the dedup key there, so a repeat or a later step never opens a
second upstream alarm, and the clear finds it.
"""

from django.conf import settings

from core.labels import MAX_LABELS

from .base import CLOSING, Field, Sent, Transport, TransportError, answered, http, json_of


class UpstreamTransport(Transport):
    label = "Upstream alarm broker"
    follows_up = CLOSING
    ordered = True
    outbox = True
    test_resolves = True
    keeps_record = True
    ack_link = False
    template_dir = "upstream"
    config_fields = (
        Field("url", "url", required=True, help="Base URL of the upstream broker."),
        Field("token", required=True, secret=True, help="A device token the upstream issued."),
        Field("source", default="upstream", help="The source name the upstream records."),
    )

    def _post(self, path: str, body: dict):
        headers = {"Authorization": f"Bearer {self.config['token']}"}
        return http("POST", self.config["url"].rstrip("/") + path, json=body, headers=headers)

    def send(self, out):
        alarm, facts = out.alarm, out.message.payload["alarm"]
        if out.event in CLOSING:
            note = (
                f"{out.event} by {facts['resolved_by'] or 'someone'} at {settings.PUBLIC_BASE_URL}"
            )
            try:
                response = self._post(
                    "/v1/alarms/clear", {"dedup_key": str(alarm.pk), "message": note}
                )
            except TransportError as exc:
                if exc.status != "HTTP 404":
                    raise
                return Sent(status=exc.status, response="already closed upstream")
            return answered(response, json_of(response).get("alarm_id", ""))
        if out.ref.get("alarm_id"):
            return Sent(status="forwarded before", message_id=out.ref["alarm_id"])
        ours = {k: facts[k] for k in ("site", "room", "person", "device") if facts[k]}
        ours["origin"] = settings.PUBLIC_BASE_URL
        # Ours win over the alarm's own labels, and together they stay within the upstream's limit.
        theirs = [(k, str(v)) for k, v in facts["labels"].items() if k not in ours]
        labels = {**dict(theirs[: MAX_LABELS - len(ours)]), **ours}
        response = self._post("/v1/alarms/raise", {
            "source": self.config.get("source", "upstream"),
            "dedup_key": str(alarm.pk),
            "title": alarm.title,
            "message": alarm.message,
            "severity": alarm.severity,
            "labels": labels,
        })  # fmt: skip
        upstream_id = json_of(response).get("alarm_id", "")
        return answered(response, upstream_id, {"alarm_id": upstream_id})
