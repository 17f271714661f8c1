"""Email in: take mail for the email integrations' addresses over SMTP and raise alarms from
it (run by `make run` and compose's `mail-in` service)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from alarms.ingest import mail_in


class Command(BaseCommand):
    help = "Listen for mail to the email integrations' addresses (SMTP) and raise alarms from it."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.MAIL_IN_HOST, help="Address to listen on.")
        parser.add_argument("--port", type=int, default=settings.MAIL_IN_PORT, help="SMTP port.")

    def handle(self, *args, host, port, **options):
        if not settings.MAIL_IN_DOMAINS:
            raise CommandError("MAIL_IN_DOMAINS is empty: name the domains to take mail for.")
        stop = threading.Event()
        for name in ("SIGTERM", "SIGINT"):
            signal.signal(getattr(signal, name), lambda *_: stop.set())
        domains = ", ".join(f"@{domain}" for domain in settings.MAIL_IN_DOMAINS)
        self.stdout.write(f"Listening for mail on {host}:{port} for {domains}.", ending="\n")
        self.stdout.flush()
        mail_in.serve(stop, host, port)
