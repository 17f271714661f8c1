"""The HTTP calls every provider transport makes: connections are kept open between messages,
no provider's cookie is ever sent on, and the environment's proxy settings are followed."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notifications.transports import base
from notifications.transports.base import http


class KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open, as providers' servers do

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append((self.client_address, self.headers.get("Cookie")))
        self.server.paths.append(self.path)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "session=provider-secret; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def provider():
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveHandler)
    server.daemon_threads = True
    server.seen, server.paths = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_messages_to_a_provider_share_one_connection_and_carry_no_cookie(provider):
    url = f"http://127.0.0.1:{provider.server_port}/hook"

    answers = [http("POST", url, json={"n": n}).status_code for n in range(3)]

    assert answers == [200, 200, 200]
    clients = {client for client, _ in provider.seen}
    assert len(clients) == 1, "each message opened a connection of its own"
    assert [cookie for _, cookie in provider.seen] == [None, None, None]


def test_the_environment_s_proxy_is_used_except_for_hosts_under_no_proxy(provider, monkeypatch):
    port = provider.server_port
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")  # the provider stands in
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setattr(base, "_sessions", threading.local())  # a session that reads them

    for _ in range(2):  # the second time from what the session kept of the environment
        assert http("POST", "http://provider.example/hook", json={}).status_code == 200
    assert http("POST", f"http://127.0.0.1:{port}/direct", json={}).status_code == 200

    assert provider.paths == ["http://provider.example/hook"] * 2 + ["/direct"]
