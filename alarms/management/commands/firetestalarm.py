"""Raise a real test alarm as a device or a source would, and follow it to its first message."""

from django.core.management.base import BaseCommand, CommandError

from alarms import lifecycle
from alarms.drills import firing
from alarms.drills.follow import first_notification, follow_until

HELP = """Raise a test alarm through the real path and follow it until its first notification
is delivered (or fails), printing its timeline as it happens; then resolve it ("test finished").

With --device the alarm is raised as that device raises its own (a desk phone's emergency key,
a generic device's JSON raise, an Alertmanager or PagerDuty integration's payload), so its
routing rules, mapping and default policies apply. With --source it is the payload that source
sends (for alertmanager and pagerduty: as the one enabled integration of that kind).

The alarm is a real one and notifies real people: its title starts with "[TEST]" and it carries
the labels test="true" and test_run (a routing rule matching {test="true"} can send test alarms
elsewhere). The device is not marked seen and its rate limit is not counted.

Needs the running Celery worker; this command does not start one. Exits 0 when a notification
was delivered; 1 with the reason when there is no route, nobody is reachable, the delivery
failed or nothing happened within --timeout (the worker is not running)."""


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--device", metavar="NAME", help="Raise it as this device.")
        which.add_argument("--source", choices=firing.SOURCES, help="Raise it as this source.")
        parser.add_argument(
            "--timeout", type=float, default=60, help="Seconds to wait for a delivery (60)."
        )
        parser.add_argument(
            "--keep-open", action="store_true", help="Leave the test alarm open at the end."
        )

    def handle(self, *args, **options):
        actor, run = firing.command_actor("firetestalarm"), firing.new_run()
        try:
            if options["device"]:
                alarm = firing.raise_as_device(firing.find_device(options["device"]), run, actor)
            else:
                alarm = firing.raise_from_source(options["source"], run, actor)
        except firing.DrillRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Raised test alarm {alarm.pk}: {alarm.title} (source {alarm.source})")
        try:
            verdict = follow_until(alarm, first_notification, options["timeout"], self.stdout)
        finally:
            if options["keep_open"]:
                self.stdout.write(f"Left open (--keep-open): alarm {alarm.pk}")
            elif lifecycle.resolve(alarm.pk, actor, "test finished").changed:
                self.stdout.write(f"Resolved test alarm {alarm.pk} (test finished)")
        if not verdict.ok:
            raise CommandError(f"FAILED: {verdict.message}", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"OK: delivered {verdict.message}"))
