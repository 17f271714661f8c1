"""Email (HTML and plain text) over SMTP: to a person's address, or to the channel's own `to`.

Sent through Django's mail settings; with the SMTP backend the conversation is ours, so the
Delivery records the server's reply to DATA (the queue id most servers put there).
"""

import hashlib
import smtplib
from email.utils import make_msgid

from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.utils import DNS_NAME

from .base import Field, Sent, Transport, TransportError


class EmailTransport(Transport):
    label = "Email"
    reaches = "email"
    template_dir = "email"
    sends_html = True
    config_fields = (
        Field("to", "email", help="Comma-separated addresses, when used as a channel."),
        Field("from_email", "email", help="Sender; DEFAULT_FROM_EMAIL when empty."),
    )

    def send(self, out) -> Sent:
        recipients = [a.strip() for a in out.address.split(",") if a.strip()]
        email = EmailMultiAlternatives(
            subject=out.message.subject,
            body=out.message.text,
            from_email=self.config.get("from_email") or None,
            to=recipients,
        )
        if out.message.html:
            email.attach_alternative(out.message.html, "text/html")
        # Our own Message-ID, so the Delivery can name it without building the message twice;
        # the same on every attempt of one message, so a copy sent again after its sender died
        # between the server's answer and its record can be told for what it is.
        message_id = _message_id(out.key) if out.key else make_msgid(domain=DNS_NAME)
        email.extra_headers["Message-ID"] = message_id
        if out.alarm is not None:  # none: a message about shifts (a reminder, a hand-off)
            email.extra_headers["X-Alarm-Id"] = str(out.alarm.pk)
        connection = get_connection(fail_silently=False)
        if not isinstance(connection, SmtpBackend):
            connection.send_messages([email])
            return Sent(
                status="accepted", response=type(connection).__module__, message_id=message_id
            )
        try:
            connection.open()
            code, reply = _smtp_send(connection.connection, email)
        except smtplib.SMTPResponseException as exc:
            # 5xx is the server's final word; 4xx means try again later.
            raise TransportError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error.decode(errors='replace')}",
                permanent=exc.smtp_code >= 500,
                status=f"SMTP {exc.smtp_code}",
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise TransportError(
                f"recipient refused: {exc.recipients}",
                permanent=all(code >= 500 for code in codes),
                status=f"SMTP {codes[0]}" if codes else "",
            ) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"{exc.__class__.__name__}: {exc}") from exc
        finally:
            connection.close()
        return Sent(status=f"SMTP {code}", response=reply, message_id=message_id)


def _message_id(key: str) -> str:
    """A Message-ID made from the message's key: short enough that the header is not folded."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{DNS_NAME}>"


def _smtp_send(smtp: smtplib.SMTP, email) -> tuple[int, str]:
    """MAIL, RCPT, DATA by hand, keeping the reply to DATA that sendmail() throws away."""
    sender = email.from_email
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused = {}
    for recipient in email.recipients():
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
    if len(refused) == len(email.recipients()):
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = smtp.data(email.message().as_bytes(linesep="\r\n"))
    if code != 250:
        smtp.rset()
        raise smtplib.SMTPDataError(code, reply)
    return code, reply.decode(errors="replace")
