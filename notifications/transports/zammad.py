"""Zammad tickets: created on the first step, noted on later steps and on ACK, closed on resolve.

The ticket's id is remembered on the alarm (`external_refs`), so every later delivery updates
the same ticket. Zammad's token auth: `Authorization: Token token=<token>`. Articles are
internal notes unless the channel says otherwise; a public article is read by the ticket's
customer, so it never carries an ACK link (the link acts as whoever opens it).
"""

from .base import (
    CLOSING,
    FOLLOW_UPS,
    NOTIFY,
    TEST,
    Field,
    Transport,
    TransportError,
    answered,
    http,
    json_of,
)


class ZammadTransport(Transport):
    label = "Zammad ticket"
    follows_up = FOLLOW_UPS
    ordered = True
    outbox = True
    test_resolves = True
    keeps_record = True
    template_dir = "zammad"
    config_fields = (
        Field("url", "url", required=True, help="Base URL of the Zammad instance."),
        Field("token", required=True, secret=True, help="An API access token."),
        Field("group", default="Users", help="The group new tickets go to."),
        Field(
            "customer",
            required=True,
            help="Customer of new tickets (login, email or guess:<email>).",
        ),
        Field("close_state", default="closed"),
        Field(
            "internal",
            "bool",
            default=True,
            help="Alarm articles are internal notes, for agents only. false: the ticket's "
            "customer reads them too, and they carry no ACK link.",
        ),
    )

    @property
    def ack_link(self) -> bool:
        return self.internal

    @property
    def internal(self) -> bool:
        return self.config.get("internal", True) is not False

    def _call(self, method: str, path: str, body: dict):
        headers = {"Authorization": f"Token token={self.config['token']}"}
        return http(method, self.config["url"].rstrip("/") + path, json=body, headers=headers)

    def _article(self, out) -> dict:
        return {
            "subject": out.message.subject[:250],
            "body": out.message.text,
            "content_type": "text/plain",
            "type": "note",
            "internal": self.internal,
        }

    def send(self, out):
        ticket_id = out.ref.get("ticket_id")
        if out.event in (NOTIFY, TEST) and not ticket_id:
            response = self._call("POST", "/api/v1/tickets", {
                "title": out.message.subject[:250],
                "group": self.config.get("group", "Users"),
                "customer": self.config["customer"],
                "article": self._article(out),
            })  # fmt: skip
            ticket = json_of(response)
            if not ticket.get("id"):
                raise TransportError(
                    f"Zammad answered without a ticket id: {response.text[:200]}",
                    permanent=True,
                    status=f"HTTP {response.status_code}",
                )
            ref = {"ticket_id": ticket.get("id"), "ticket_number": ticket.get("number")}
            return answered(response, ticket.get("number") or ticket.get("id"), ref)
        if not ticket_id:
            raise TransportError("no Zammad ticket was created for this alarm", permanent=True)
        article = self._article(out)
        if out.event in CLOSING:
            body = {"state": self.config.get("close_state", "closed"), "article": article}
            response = self._call("PUT", f"/api/v1/tickets/{ticket_id}", body)
            return answered(response, ticket_id)
        response = self._call(
            "POST", "/api/v1/ticket_articles", {"ticket_id": ticket_id, **article}
        )
        return answered(response, json_of(response).get("id", ""))
