"""A panel of our own on the DC-09 wire, written from the standard alone (it shares no code
with the receiver): it frames SIA DCS, Contact ID and NULL messages, plain or encrypted with
an account's key, sends them over TCP or UDP and reads the receiver's answers. The receiver's
tests and the benchmark use it; an installer can point it at a receiver to try a panel's
settings before the panel is wired."""

import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

IV = bytes(16)


def crc16(text: str) -> str:
    """CRC-16/ARC (polynomial 0x8005 reflected, initial value 0) as four hex digits."""
    value = 0
    for byte in text.encode("ascii"):
        for bit in range(8):
            mixed = (value ^ (byte >> bit)) & 1
            value >>= 1
            if mixed:
                value ^= 0xA001
    return f"{value:04X}"


def framed(body: str) -> bytes:
    """<LF><crc><0LLL><body><CR>: the CRC and length cover the body from its first quote."""
    return b"\n" + f"{crc16(body)}0{len(body):03X}".encode() + body.encode("ascii") + b"\r"


def panel_time(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("_%H:%M:%S,%m-%d-%Y")


def aes(key: str, data: bytes, decrypt=False) -> bytes:
    cipher = Cipher(algorithms.AES(key.encode("ascii")), modes.CBC(IV))
    worker = cipher.decryptor() if decrypt else cipher.encryptor()
    return worker.update(data) + worker.finalize()


@dataclass
class Answer:
    kind: str  # ACK, NAK, DUH (without the * of an encrypted one)
    encrypted: bool
    sequence: str
    receiver: str
    line: str
    account: str
    data: str  # between the brackets, decrypted where it was encrypted
    time: str  # the _HH:MM:SS,MM-DD-YYYY stamp, if any
    raw: bytes


@dataclass
class Dc09Panel:
    account: str
    key: str = ""  # 16, 24 or 32 characters: the message is encrypted
    receiver: str = "R0"
    line: str = "L0"
    sequence: int = 0

    def next_sequence(self) -> str:
        self.sequence = self.sequence % 9999 + 1
        return f"{self.sequence:04d}"

    def message(self, token: str, data: str, *, at: datetime | None = None,
                stamp: bool | None = None, sequence: str | None = None) -> bytes:  # fmt: skip
        """A framed message: `token` SIA-DCS, ADM-CID or NULL; `data` what goes between the
        brackets. Encrypted messages always carry their timestamp; plain ones when `stamp`."""
        head = f"{sequence or self.next_sequence()}{self.receiver}{self.line}#{self.account}["
        stamp = self.key or stamp
        tail = "]" + (panel_time(at) if stamp else "")
        if not self.key:
            return framed(f'"{token}"{head}{data}{tail}')
        text = data + tail
        pad = "".join(secrets.choice("0123456789ABCDEF") for _ in range(16 - (len(text) + 1) % 16))
        secret = aes(self.key, (pad + "|" + text).encode("ascii")).hex().upper()
        return framed(f'"*{token}"{head}{secret}')

    def sia(self, code: str, zone: str = "", partition: str = "1", **options) -> bytes:
        """A SIA DCS event: "#acct|Nri<partition>/<code><zone>"."""
        return self.message("SIA-DCS", f"#{self.account}|Nri{partition}/{code}{zone}", **options)

    def contact_id(self, qualifier: int, event: int, partition: int, zone: int,
                   **options) -> bytes:  # fmt: skip
        """A Contact ID event: "#acct|QEEE PP ZZZ" (qualifier 1 new, 3 restore)."""
        data = f"#{self.account}|{qualifier}{event:03d} {partition:02d} {zone:03d}"
        return self.message("ADM-CID", data, **options)

    def null(self, **options) -> bytes:
        """A supervision (link test) message."""
        return self.message("NULL", "", **options)

    def read(self, raw: bytes) -> Answer:
        """The receiver's answer, its CRC and length checked, decrypted with our key."""
        assert raw[:1] == b"\n" and raw[-1:] == b"\r", raw
        crc, length, body = raw[1:5].decode(), raw[5:9].decode(), raw[9:-1].decode("ascii")
        assert crc == crc16(body), f"CRC {crc} != {crc16(body)} of {body!r}"
        assert int(length, 16) == len(body) and length[0] == "0", (length, len(body))
        quoted, rest = body[1:].split('"', 1)
        encrypted = quoted.startswith("*")
        head, _, data = rest.partition("[")
        sequence, routing = head[:4], head[4:]
        receiver, _, after = routing.partition("L")
        line, _, account = after.partition("#")
        if line.endswith("A0"):  # a NAK's "R0L0A0": no account
            line, account = line[:-2], "0"
        time = ""
        if encrypted:
            plain = aes(self.key, bytes.fromhex(data), decrypt=True).decode("ascii")
            data = plain.split("|", 1)[1]
        if "]" in data:
            data, time = data.split("]", 1)
        return Answer(quoted.lstrip("*"), encrypted, sequence, receiver, "L" + line, account,
                      data, time, raw)  # fmt: skip


class Link:
    """A connection to a receiver: one TCP connection kept open, or UDP datagrams."""

    def __init__(self, host: str, port: int, udp: bool = False, timeout: float = 10.0):
        self.udp = udp
        kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buffer = b""

    def send(self, message: bytes) -> bytes:
        """Send one message and wait for its answer (the raw frame)."""
        self.sock.sendall(message) if not self.udp else self.sock.send(message)
        return self.receive()

    def receive(self) -> bytes:
        if self.udp:
            return self.sock.recv(4096)
        while b"\r" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the receiver closed the connection")
            self.buffer += chunk
        frame, _, self.buffer = self.buffer.partition(b"\r")
        return frame[frame.index(b"\n") :] + b"\r"

    def close(self):
        self.sock.close()
