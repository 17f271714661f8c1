"""The web process: daphne with all of its options, its access log written through logging
(one JSON object a line, tokens in paths redacted) instead of straight to stdout.

Run as `python -m alarmsite.serve -b 0.0.0.0 -p 8000 alarmsite.asgi:application`.
"""

import logging

from daphne import server as daphne_server
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server

log = logging.getLogger("daphne.access")

_SOCKET_ACTIONS = {"connecting": "WSCONNECTING", "connected": "WSCONNECT",
                   "rejected": "WSREJECT", "disconnected": "WSDISCONNECT"}  # fmt: skip


def access_log(protocol: str, action: str, details: dict) -> None:
    """Daphne's action logger: one line per HTTP request and per WebSocket change."""
    client = details.get("client") or "-"
    if protocol == "http" and action == "complete":
        log.info(
            '%s "%s %s" %s %s',
            client, details["method"], details["path"], details["status"], details["size"],
            extra={"client": client, "method": details["method"], "path": details["path"],
                   "status": details["status"], "size": details["size"],
                   "duration_ms": round(details.get("time_taken", 0) * 1000, 1)},
        )  # fmt: skip
    elif protocol == "websocket" and action in _SOCKET_ACTIONS:
        what = _SOCKET_ACTIONS[action]
        log.info('%s "%s %s"', client, what, details["path"],
                 extra={"client": client, "method": what, "path": details["path"]})  # fmt: skip


class FormsLeftToDjango(WebRequest):
    """Twisted parses a multipart body itself before daphne hands the request on, and answers
    one it cannot parse (an empty form: no parts) with a bare 400, no body and no Content-Type.
    Django reads form bodies anyway, and answers as the API does."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)


class FormsLeftToDjangoFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = FormsLeftToDjango
        return protocol


class LoggingServer(Server):
    def __init__(self, *args, action_logger=None, **kwargs):
        # Daphne hands us its stdout writer when an access log is wanted (verbosity >= 1).
        super().__init__(*args, action_logger=access_log if action_logger else None, **kwargs)

    def run(self):
        # Daphne's run() builds the HTTP factory it finds under this name: ours, so.
        daphne_server.HTTPFactory = FormsLeftToDjangoFactory
        super().run()


class LoggingCommandLine(CommandLineInterface):
    server_class = LoggingServer


if __name__ == "__main__":
    LoggingCommandLine.entrypoint()
