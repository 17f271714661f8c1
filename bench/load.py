"""The load driver of bench/bench.py, run as a process of its own: requests to the broker (or to
Alertmanager) over loopback at a fixed rate or a fixed concurrency, bounded in count and time.

    python bench/load.py JOB.json RESULT.json

JOB names the server, the kind of request (`yealink`, `raise`, `alertmanager`), the tokens,
how many requests at most, for how many seconds at most, and either `rate` (requests a second,
open loop: a slow answer delays no later request while a connection is free) or only
`concurrency` (each connection sends its next request when the last is answered). RESULT gets
one record per request: [index, sent, answered, status, id, error] (times from time.time(),
the clock the sink reads too) and this process's CPU seconds.

The HTTP client is a small one on asyncio streams (keep-alive, Content-Length or chunked
bodies): the driver shares the machine's two cores with the stack it measures, and a general
purpose client costs several times its CPU per request. SIGTERM stops it sending; it still
writes what it has.
"""

import asyncio
import itertools
import json
import signal
import sys
import time
from urllib.parse import urlsplit

ACCEPTED = {"yealink": (200, 201), "raise": (200, 201), "alertmanager": (200,)}


class Connection:
    """One keep-alive HTTP/1.1 connection, opened on first use and again after a failure."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = None, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
        if chunked:
            body = await self._chunked()
        elif length is not None:
            body = await self.reader.readexactly(length)
        elif status in (204, 304):
            body = b""
        else:  # no length: the body ends with the connection
            body, close = await self.reader.read(), True
        if close:
            self.close()
        return status, body

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers are sent to us
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Requests:
    """The bytes of request `index` of a job, and the id the answer stands for."""

    def __init__(self, job: dict):
        self.kind, self.tag, self.tokens = job["kind"], job["tag"], job.get("tokens") or [""]
        self.host = urlsplit(job["base"]).netloc

    def build(self, index: int) -> tuple[bytes, str]:
        token = self.tokens[index % len(self.tokens)]
        if self.kind == "yealink":
            path = f"/v1/yealink/alarm?token={token}"
            return f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode(), ""
        if self.kind == "raise":
            body = {"title": f"Benchmark {self.tag} {index}", "severity": "critical",
                    "dedup_key": f"{self.tag}-{index}"}  # fmt: skip
            return self._post("/v1/alarms/raise", body, f"Authorization: Bearer {token}\r\n"), ""
        alert_id = f"{self.tag}-{index}"
        body = [{"labels": {"alertname": "BenchmarkAlarm", "bench_id": alert_id,
                            "severity": "critical"},
                 "annotations": {"summary": f"Benchmark {self.tag} {index}"}}]  # fmt: skip
        return self._post("/api/v2/alerts", body), alert_id

    def _post(self, path: str, body, headers: str = "") -> bytes:
        data = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data

    def answered_id(self, status: int, body: bytes, known: str) -> str:
        if known or status not in ACCEPTED[self.kind]:
            return known
        return json.loads(body)["alarm_id"]


async def one(conn: Connection, requests: Requests, index: int, timeout: float) -> list:
    data, known = requests.build(index)
    sent = time.time()
    try:
        status, body = await asyncio.wait_for(conn.request(data), timeout)
    except TimeoutError:
        conn.close()
        return [index, sent, time.time(), 0, "", "timeout"]
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        conn.close()
        return [index, sent, time.time(), 0, "", f"connection: {exc.__class__.__name__}"]
    answered = time.time()
    if status not in ACCEPTED[requests.kind]:
        return [index, sent, answered, status, "", f"HTTP {status}"]
    try:
        return [index, sent, answered, status, requests.answered_id(status, body, known), ""]
    except (ValueError, KeyError):
        return [index, sent, answered, status, "", "unreadable answer"]


async def drive(job: dict, stop: asyncio.Event) -> list:
    loop = asyncio.get_running_loop()
    url = urlsplit(job["base"])
    requests, timeout = Requests(job), job.get("timeout", 10.0)
    count, concurrency, rate = job["count"], job["concurrency"], job.get("rate")
    offset, deadline = job.get("offset", 0), loop.time() + job["seconds"]
    connections = [Connection(url.hostname, url.port) for _ in range(concurrency)]
    records = []

    async def closed(conn: Connection, indexes) -> None:
        for index in indexes:
            if index >= offset + count or loop.time() >= deadline or stop.is_set():
                return
            records.append(await one(conn, requests, index, timeout))

    async def timed(conn: Connection, index: int, idle: asyncio.Queue, lag: float) -> None:
        try:
            record = await one(conn, requests, index, timeout)
            records.append([*record, lag])
        finally:
            idle.put_nowait(conn)

    try:
        if not rate:
            indexes = itertools.count(offset)  # shared: each connection takes the next
            await asyncio.gather(*(closed(conn, indexes) for conn in connections))
            return records
        idle: asyncio.Queue = asyncio.Queue()
        for conn in connections:
            idle.put_nowait(conn)
        tasks, start = [], loop.time()
        for i in range(count):
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            if loop.time() >= deadline or stop.is_set():
                break
            conn = await idle.get()
            lag = loop.time() - scheduled  # every connection was busy: the send is late
            tasks.append(asyncio.create_task(timed(conn, offset + i, idle, lag)))
        await asyncio.gather(*tasks)
        return records
    finally:
        for conn in connections:
            conn.close()


async def main(job: dict) -> dict:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    started = time.time()
    records = await drive(job, stop)
    return {"records": records, "started": started, "ended": time.time(),
            "stopped": stop.is_set(), "cpu_seconds": time.process_time()}  # fmt: skip


if __name__ == "__main__":
    job_path, result_path = sys.argv[1:3]
    with open(job_path) as job_file:
        result = asyncio.run(main(json.load(job_file)))
    with open(result_path, "w") as out:
        json.dump(result, out)
