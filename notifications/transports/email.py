"""Email to a person through Django's mail backend (SMTP, or files under var/mail)."""

import smtplib

from django.core.mail import EmailMessage, get_connection

from .base import Transport, TransportError


class EmailTransport(Transport):
    def address_for(self, delivery) -> str:
        return delivery.person.email if delivery.person else ""

    def send(self, delivery, message) -> str:
        email = EmailMessage(
            subject=message.subject, body=message.body, to=[self.address_for(delivery)]
        )
        email.extra_headers["X-Alarm-Id"] = str(delivery.alarm_id)
        try:
            get_connection(fail_silently=False).send_messages([email])
        except smtplib.SMTPResponseException as exc:
            # 5xx is the server's final word; 4xx means try again later.
            raise TransportError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            permanent = all(code >= 500 for code, _ in exc.recipients.values())
            raise TransportError(
                f"recipient refused: {exc.recipients}", permanent=permanent
            ) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"{exc.__class__.__name__}: {exc}") from exc
        return f"accepted for {self.address_for(delivery)}"
