"""A real HTTP server on loopback that plays a provider's API in tests.

Each test module registers routes that check what the real provider checks (auth, shape) and
answer in its format. Any route can be told to fail first: `fail(500)`, `fail(429,
retry_after="2")`, `fail(401)`, or `fail(delay=3)` to time out. Every request is recorded.
"""

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Answer:
    status: int = 200
    body: object = b""  # bytes, str, or anything JSON-encodable
    headers: dict = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "text/plain"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


class FakeProvider(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_port}"
        self.requests: list[Request] = []
        self.routes: list[tuple[str, re.Pattern, object]] = []
        self.failures: list[Answer] = []
        self.lock = threading.Lock()

    def route(self, method: str, path_pattern: str, handler) -> None:
        """handler(request, match) -> Answer; the first route whose method and path match."""
        self.routes.append((method, re.compile(path_pattern + "$"), handler))

    def fail(self, status: int = 500, *, body=b"", retry_after: str | None = None, delay=0.0):
        """Answer the next request with this instead of the route's answer."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.failures.append(Answer(status, body, headers, delay))

    def answer(self, request: Request) -> Answer:
        with self.lock:
            self.requests.append(request)
            if self.failures:
                return self.failures.pop(0)
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if method == request.method and match:
                return handler(request, match)
        return Answer(404, {"error": f"no route for {request.method} {request.path}"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        answer = self.server.answer(request)
        if answer.delay:
            time.sleep(answer.delay)
        body, content_type = answer.encoded()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args):
        pass


def start() -> FakeProvider:
    server = FakeProvider()
    # A short poll interval: shutdown() waits for the loop to notice, once per test.
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def stop(server: FakeProvider) -> None:
    server.shutdown()
    server.server_close()
