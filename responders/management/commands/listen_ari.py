"""Drive the calls placed through Asterisk: listen to ARI's events for every enabled ARI
channel (run by `make run` and compose's `calls` service; idle while there is none)."""

import signal
import threading

from django.core.management.base import BaseCommand

from responders import ari


class Command(BaseCommand):
    help = "Listen to Asterisk's ARI events and drive the broker's calls (key presses, outcomes)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--recheck", type=float, default=30.0, help="Seconds between looks for new channels."
        )

    def handle(self, *args, recheck, **options):
        stop = threading.Event()
        for name in ("SIGTERM", "SIGINT"):
            signal.signal(getattr(signal, name), lambda *_: stop.set())
        self.stdout.write("Listening for ARI channels' events.")
        ari.listen(stop, recheck_seconds=recheck)
