"""Stand-ins for the providers that count what they accepted: an SMTP server and a webhook
receiver, each answering normally, with an error (SMTP 451, HTTP 500), or not at all until the
sender gives up (a timeout). A message is notified once the sink accepted it; each receipt is
keyed by (alarm id, event, step, round, address), steps and rounds counted from 0 as on the
Delivery row (a stand-down: step and round 0). Each sink also counts what it received more
than once by the message's own identity (an email's Message-ID, a webhook's event_id at its
address): the resends as the recipient sees them."""

import asyncio
import email
import email.policy
import json
import logging
import re
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from conftest import free_port

OK, ERROR, HANG = "ok", "error", "hang"
# A hanging sink gives up on a sender that is still there after this long.
HANG_LIMIT_SECONDS = 30
# The SMTP server's own lines (one per command) would bury a failing scenario's output.
logging.getLogger("mail.log").setLevel(logging.WARNING)
STEP_LINE = re.compile(r"Escalation: step (\d+) of \d+, round (\d+)")
ACK_LINK = re.compile(r"https?://\S+/a/[A-Za-z0-9_\-]+")


class _Counting:
    def __init__(self):
        self.mode = OK
        self.receipts: list[tuple] = []  # the key of each message accepted
        self.identities: list[str] = []  # ...and its own identity, in the same order
        self.received_at: list[float] = []  # ...and when (time.time())
        self.refused = 0  # answered with an error
        self.timed_out = 0  # not answered until the sender gave up
        self.abandoned = 0  # the sender was gone (killed) before the answer
        self.lock = threading.Lock()

    def record(self, key: tuple, identity: str) -> None:
        with self.lock:
            self.receipts.append(key)
            self.identities.append(identity)
            self.received_at.append(time.time())

    def received_again(self) -> list[tuple[tuple, float]]:
        """(key, when) of every message received again, by its own identity."""
        seen, again = set(), []
        with self.lock:
            for key, identity, at in zip(self.receipts, self.identities, self.received_at,
                                         strict=True):  # fmt: skip
                if identity in seen:
                    again.append((key, at))
                seen.add(identity)
        return again

    def count(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)


class WebhookSink(_Counting, ThreadingHTTPServer):
    """Receives our signed JSON webhook at /hook/<name>; `delay` makes every answer slow."""

    daemon_threads = True

    def __init__(self):
        _Counting.__init__(self)
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", 0), _HookHandler)
        self.delay = 0.0
        self.base = f"http://127.0.0.1:{self.server_port}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        return f"{self.base}/hook/{name}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        sink = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.close_connection = True
        if sink.mode == HANG:
            _wait_until_gone(self.connection, lambda: sink.mode == HANG)
            sink.count("timed_out")
            return
        if sink.mode == ERROR:
            sink.count("refused")
            self._answer(500)
            return
        if sink.delay:
            time.sleep(sink.delay)
        if _gone(self.connection):
            sink.count("abandoned")
            return
        event_id = json.loads(body)["event_id"]
        alarm_id, event, round_, step = event_id.split(":")
        address = sink.base + self.path
        sink.record((alarm_id, event, int(step) - 1, int(round_) - 1, address), event_id + address)
        self._answer(200)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "11")
        self.end_headers()
        self.wfile.write(b'{"ok":true}')

    def log_message(self, *args):
        pass


def _gone(sock: socket.socket) -> bool:
    """Whether the sender closed its end (it timed out, or its process died)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _wait_until_gone(sock: socket.socket, still_hanging) -> None:
    deadline = time.monotonic() + HANG_LIMIT_SECONDS
    while still_hanging() and not _gone(sock) and time.monotonic() < deadline:
        time.sleep(0.05)


class MailSink(_Counting):
    """An SMTP server; a message's key comes from its X-Alarm-Id header and the "Escalation:
    step N of M, round R" line; the ACK link in each message is kept for its recipient.
    `on_accept(sink)`, when set, runs as each message is taken, before the sender hears so."""

    def __init__(self):
        super().__init__()
        self.on_accept = None
        self.port = free_port()
        self.ack_links: dict[tuple[str, str], str] = {}
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        if self.mode == ERROR:
            self.count("refused")
            return "451 4.3.0 Try again later"
        if self.mode == HANG:
            self.count("timed_out")
            deadline = time.monotonic() + HANG_LIMIT_SECONDS
            while self.mode == HANG and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return "451 4.3.0 Try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()
        # A stand-down (after an ACK or a resolve) is the cycle's one, as its Delivery is.
        event, step, round_ = ("stand_down", 1, 1) if text.startswith("Stand down:") else (
            "notify", *STEP_LINE.search(text).groups())  # fmt: skip
        alarm_id = str(message["X-Alarm-Id"])
        link = ACK_LINK.search(text)
        for recipient in envelope.rcpt_tos:
            key = (alarm_id, event, int(step) - 1, int(round_) - 1, recipient)
            self.record(key, f"{message['Message-ID']} {recipient}")
            if link:
                self.ack_links[(alarm_id, recipient)] = link.group(0)
        if self.on_accept:
            self.on_accept(self)
        return "250 OK"

    def close(self) -> None:
        self.controller.stop()


class UpstreamSink(_Counting):
    """Another alarm broker's raise and clear API (`POST /v1/alarms/raise|clear`, as the
    upstream channel calls it), on a port of its own: `stop()` takes it away (connections
    refused) and `start()` brings it back on the same port. A raise is keyed as the step's
    message of the alarm named by its dedup key, a clear as its `resolved`; `order` keeps each
    alarm's events in the order they arrived."""

    def __init__(self):
        super().__init__()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.order: dict[str, list[str]] = {}
        self.server = None
        self.start()

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _UpstreamHandler)
        self.server.daemon_threads, self.server.sink = True, self
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self, dedup_key: str, event: str) -> None:
        key = (dedup_key, event, 0, 0, self.base)
        with self.lock:
            self.order.setdefault(dedup_key, []).append(event)
        self.record(key, f"{dedup_key} {event}")

    def close(self) -> None:
        self.stop()


class _UpstreamHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        sink = self.server.sink
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        event = {"/v1/alarms/raise": "notify", "/v1/alarms/clear": "resolved"}[self.path]
        sink.received(body["dedup_key"], event)
        answer = json.dumps({"alarm_id": f"up-{body['dedup_key']}", "status": "triggered"})
        self.send_response(201 if event == "notify" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args):
        pass
