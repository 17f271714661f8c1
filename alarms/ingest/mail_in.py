"""The SMTP listener of email in (`manage.py listen_mail`): an aiosmtpd server taking mail for
the email integrations' addresses (alarms/sources/email_in.py) and answering as SMTP says
(RFC 5321, enhanced codes of RFC 3463): 550 5.7.1 for a domain we do not take mail for, 550
5.1.1 for an unknown or disabled address, 451 4.7.1 over the integration's rate limit, 552 5.3.4
for a mail over MAIL_IN_MAX_BYTES (SIZE is advertised), 451 4.3.0 while the database is away.
250 comes only after the mail is committed. The database work runs on a few threads beside the
event loop, each with its own connection."""

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from django.conf import settings
from django.db import close_old_connections

from ..sources import email_in
from ..sources.refusal import Refused

log = logging.getLogger(__name__)

# A source's refusal in SMTP's words.
REFUSALS = {403: "550 5.7.1 {}", 404: "550 5.1.1 {}", 429: "451 4.7.1 {}, try again later"}
TRY_LATER = "451 4.3.0 Mail not stored, try again later"
TOO_BIG = "552 5.3.4 Message too big for this system"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
ACCEPTED = "250 2.0.0 Stored"
MAX_RECIPIENTS = 20
DATABASE_THREADS = 4


class Server(SMTP):
    """aiosmtpd's SMTP session, its size refusals said with their enhanced status code."""

    SIZE_REFUSALS = (
        "552 Error: message size exceeds fixed maximum message size",  # MAIL FROM's SIZE=
        "552 Error: Too much mail data",  # DATA ran over (read to its end, then dropped)
    )

    def __init__(self, handler, **options):
        # SMTP's lines are at most 1,000 bytes, but a device that ends them with LF alone sends
        # one long line: it is taken up to the mail's own limit rather than refused.
        self.line_length_limit = settings.MAIL_IN_MAX_BYTES
        super().__init__(handler, **options)

    async def push(self, status: str) -> None:
        await super().push(TOO_BIG if status in self.SIZE_REFUSALS else status)


class Handler:
    """The hooks of each SMTP session: recipients checked as they are named, the mail stored
    and read at the end of DATA."""

    def __init__(self):
        self.executor = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="mail-in")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return TOO_MANY_RECIPIENTS
        reply, inbox = await self._in_thread(check_recipient, address, peer_ip(session))
        taken = getattr(envelope, "inboxes", [])
        if inbox is not None and inbox.pk not in {other.pk for other in taken}:
            envelope.rcpt_tos.append(address)  # once per integration, however it is named
            envelope.inboxes = [*taken, inbox]
        return reply

    async def handle_DATA(self, server, session, envelope):
        return await self._in_thread(accept, envelope, peer_ip(session))

    async def _in_thread(self, work, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, work, *args)


def peer_ip(session) -> str | None:
    return session.peer[0] if isinstance(session.peer, tuple) else None


def check_recipient(address: str, ip: str | None) -> tuple:
    """The reply to RCPT TO, and the inbound address when it is taken."""
    close_old_connections()  # a connection the database dropped is not reused
    try:
        return "250 2.1.5 OK", email_in.recipient(address, ip)
    except Refused as refusal:
        log.info("RCPT TO %s from %s refused: %s", address, ip, refusal)
        return REFUSALS[refusal.status].format(refusal), None
    except email_in.CONNECTION_ERRORS as exc:
        log.warning("RCPT TO %s from %s: database unavailable (%s)", address, ip, exc)
    except Exception:  # noqa: BLE001 (the sender tries again; nothing was taken)
        log.exception("RCPT TO %s from %s failed", address, ip)
    return TRY_LATER, None


def accept(envelope, ip: str | None) -> str:
    """The reply at the end of DATA: 250 only once the mail is stored."""
    close_old_connections()
    try:
        email_in.receive(envelope.inboxes, envelope.rcpt_tos, envelope.mail_from, ip,
                         envelope.original_content)  # fmt: skip
    except email_in.CONNECTION_ERRORS as exc:
        log.warning("mail from %s to %s not stored: database unavailable (%s)",
                    envelope.mail_from, envelope.rcpt_tos, exc)  # fmt: skip
        return TRY_LATER
    except Exception:  # noqa: BLE001 (not stored: the sender tries again)
        log.exception("mail from %s to %s not stored", envelope.mail_from, envelope.rcpt_tos)
        return TRY_LATER
    return ACCEPTED


class Listener(Controller):
    """The server on its own thread and event loop."""

    def factory(self):
        return Server(
            self.handler,
            hostname=settings.MAIL_IN_DOMAINS[0],  # greeting and EHLO; no DNS lookup at start
            data_size_limit=settings.MAIL_IN_MAX_BYTES,
            ident="alarm broker",
        )


def serve(stop: threading.Event, host: str, port: int) -> None:
    """Take mail on host:port until `stop` is set."""
    # aiosmtpd logs every command of every session at info; its warnings and errors stay.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    listener = Listener(Handler(), hostname=host, port=port)
    listener.start()
    log.info("listening for mail on %s:%s for %s", host, port,
             ", ".join(f"@{domain}" for domain in settings.MAIL_IN_DOMAINS))  # fmt: skip
    stop.wait()
    listener.stop()
