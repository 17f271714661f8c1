"""Receive alarm panels' SIA DC-09 messages over TCP and UDP (run by `make run` and compose's
`sia` service)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from alarms.ingest.sia_receiver import Receiver


class Command(BaseCommand):
    help = "Receive alarm panels' SIA DC-09 messages (TCP and UDP) and answer them."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SIA_HOST)
        parser.add_argument("--port", type=int, default=settings.SIA_PORT)

    def handle(self, *args, host, port, **options):
        stop = threading.Event()
        for name in ("SIGTERM", "SIGINT"):
            signal.signal(getattr(signal, name), lambda *_: stop.set())
        receiver = Receiver(host, port)
        self.stdout.write(f"Receiving SIA DC-09 on {host}:{receiver.port} (TCP and UDP).")
        self.stdout.flush()
        receiver.serve(stop)
