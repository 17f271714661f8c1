"""The DC-09 receiver's wire: TCP (a connection per panel, kept open, several messages on it)
and UDP (a datagram per message) on one port. Each message is answered by
alarms/sources/sia.answer, which stores before it ACKs; this module only cuts frames and keeps
slow or hostile peers from holding it up."""

import logging
import socketserver
import threading

from django.db import connections

from ..sources import sia

log = logging.getLogger(__name__)

# A message fits in sia.MAX_MESSAGE; more without a CR is garbage, and the connection is closed
# rather than buffered without end.
MAX_FRAME = sia.MAX_MESSAGE + 2
# A panel that keeps its connection open sends at least a NULL message per supervision
# interval; one silent for longer than this is closed (it reconnects when it has news).
IDLE_SECONDS = 300


def frames(buffer: bytearray):
    """Cut the complete messages (LF … CR) off the front of the buffer; what precedes an LF
    is line noise and is dropped."""
    while (end := buffer.find(b"\r")) != -1:
        start = buffer.rfind(b"\n", 0, end)
        message = bytes(buffer[start + 1 : end]) if start != -1 else bytes(buffer[:end])
        del buffer[: end + 1]
        yield message


class TcpHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(IDLE_SECONDS)
        ip, buffer = self.client_address[0], bytearray()
        try:
            while chunk := self.request.recv(4096):
                buffer += chunk
                for message in frames(buffer):
                    if message.strip():
                        self.request.sendall(answered(message, ip))
                if len(buffer) > MAX_FRAME:
                    log.warning("DC-09 peer %s sent %d bytes without a frame end", ip, len(buffer))
                    self.request.sendall(sia.nak())
                    return
        except (TimeoutError, ConnectionError, OSError) as exc:
            log.info("DC-09 connection from %s ended: %s", ip, exc)


class UdpHandler(socketserver.BaseRequestHandler):
    """One message per datagram, and no answer to what is not one: a spoofed sender must not
    turn a datagram into many answers, nor noise into NAKs."""

    def handle(self):
        data, sock = self.request
        if len(data) > MAX_FRAME:
            return
        message = next(frames(bytearray(data) + b"\r"), b"")
        if sia.looks_like_dc09(message):
            sock.sendto(answered(message, self.client_address[0]), self.client_address)


def answered(message: bytes, ip: str) -> bytes:
    """The answer (a NAK if answering failed), the database connection handed back after it:
    a panel may hold its TCP
    connection for days, and a thread per panel must not hold a database connection each (with
    DATABASE_POOL it goes back to the pool)."""
    try:
        return sia.answer(message, ip)
    except Exception:  # a fault of ours: the panel is told to send again, and keeps its line
        log.exception("DC-09 message from %s not answered as it should be (NAK)", ip)
        return sia.nak()
    finally:
        connections.close_all()


class TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class UdpServer(socketserver.UDPServer):
    """One thread reads every datagram in turn: one database connection, kept."""

    allow_reuse_address = True


class Receiver:
    """TCP and UDP on one port; `serve` until `stop`."""

    def __init__(self, host: str, port: int):
        self.tcp = TcpServer((host, port), TcpHandler)
        self.udp = UdpServer((host, self.tcp.server_address[1]), UdpHandler)
        self.port = self.tcp.server_address[1]

    def serve(self, stop: threading.Event) -> None:
        threads = [threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                    daemon=True) for server in (self.tcp, self.udp)]  # fmt: skip
        for thread in threads:
            thread.start()
        stop.wait()
        for server in (self.tcp, self.udp):
            server.shutdown()
            server.server_close()
