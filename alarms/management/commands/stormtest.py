"""Raise a bounded storm of test alarms against this instance and report how it coped."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from alarms.drills import firing, storm_drill
from alarms.models import OPEN_STATUSES
from escalation.models import SourceKind

HELP = f"""Raise N test alarms against this instance (through the same function the ingest API
calls; never another host), at --rate per second, each with its own dedup key, and report:
how many were accepted, the raise latency (p50/p95/p99), how many the storm guard folded into
a storm alarm, and how many notifications went out. Then cancel the test alarms (and the storm
alarms they opened) unless --keep.

Test alarms have titles starting with "[TEST] Storm test <run>:" and the labels test="true"
and test_run=<run>. By default they page nobody: they follow a policy of the run's own without
steps (removed at the cleanup), so the storm guard folds them as it would real alarms while no
message is sent. With --notify they are routed like real alarms (rules, default policies) and
notify real people; the storm guard then sends its digest as in a real storm.

N is at most {storm_drill.MAX_ALARMS}; above {storm_drill.CONFIRM_ABOVE} it needs --yes. The storm
guard counts the test alarms like any others: for up to two of its windows after the run, more
alarms than its thresholds allow (real ones too) are folded into digests. --cleanup RUN cancels
what a run left behind with --keep."""


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, nargs="?", metavar="N", help="Alarms to raise.")
        parser.add_argument("--rate", type=float, default=50.0, help="Alarms per second (50).")
        parser.add_argument(
            "--source", default=SourceKind.API, choices=[kind for kind in SourceKind.values],
            help="The source the test alarms claim (api); storms are counted per source.",
        )  # fmt: skip
        parser.add_argument(
            "--notify", action="store_true", help="Route them as real alarms: people are paged."
        )
        parser.add_argument(
            "--yes", action="store_true", help=f"Allow N above {storm_drill.CONFIRM_ABOVE}."
        )
        parser.add_argument("--keep", action="store_true", help="Leave the test alarms open.")
        parser.add_argument(
            "--settle", type=float, default=10.0,
            help="With --notify: seconds to wait for messages under way before counting (10).",
        )  # fmt: skip
        parser.add_argument("--cleanup", metavar="RUN", help="Cancel what run RUN left open.")

    def handle(self, *args, **options):
        actor = firing.command_actor("stormtest")
        if options["cleanup"]:
            cancelled = storm_drill.clean_up(options["cleanup"], actor)
            self.stdout.write(f"Cancelled {cancelled} alarm(s) of run {options['cleanup']}")
            return
        count, rate = options["count"], options["rate"]
        self.check_bounds(count, rate, options["yes"])
        storm = storm_drill.Storm(run=firing.new_run(), count=count, source=options["source"])
        if options["notify"]:
            policy = None
            self.stdout.write(self.style.WARNING(
                "--notify: the test alarms are routed like real ones and notify real people"
            ))  # fmt: skip
        else:
            policy = storm_drill.quiet_policy(storm.run)
            self.stdout.write(f"The test alarms follow policy {policy.name!r}: nobody is paged")
        self.stdout.write(f"Run {storm.run}: {count} test alarms from {storm.source} at {rate:g}/s")
        try:
            storm_drill.raise_storm(storm, rate, actor, policy)
            counts = storm_drill.settle(storm, options["settle"] if options["notify"] else 0)
            self.report(storm, counts)
        finally:
            if options["keep"]:
                self.stdout.write(
                    f"Left open (--keep); later: manage.py stormtest --cleanup {storm.run}"
                )
            else:
                cancelled = storm_drill.clean_up(storm.run, actor)
                left = storm.alarms().filter(status__in=OPEN_STATUSES).count()
                self.stdout.write(f"Cleaned up: cancelled {cancelled} alarm(s), {left} left open")
        if storm.errors:
            raise CommandError(f"{len(storm.errors)} of {count} raises failed", returncode=1)

    def check_bounds(self, count, rate, confirmed):
        if count is None:
            raise CommandError("give N, the number of test alarms (or --cleanup RUN)")
        if not 1 <= count <= storm_drill.MAX_ALARMS:
            raise CommandError(
                f"N must be between 1 and {storm_drill.MAX_ALARMS}: a storm test is bounded"
            )
        if count > storm_drill.CONFIRM_ABOVE and not confirmed:
            raise CommandError(
                f"{count} test alarms is above {storm_drill.CONFIRM_ABOVE}: add --yes to go ahead"
            )
        if not 0 < rate <= storm_drill.MAX_RATE:
            raise CommandError(f"--rate must be above 0 and at most {storm_drill.MAX_RATE:g}")

    def report(self, storm, counts):
        write = self.stdout.write
        latencies = storm.latencies_ms
        accepted = len(latencies)
        write(f"Accepted: {accepted} of {storm.count} in {storm.seconds:.2f} s "
              f"({accepted / storm.seconds:.1f}/s)")  # fmt: skip
        for error in sorted(set(storm.errors))[:5]:
            write(self.style.ERROR(f"  refused: {error}"))
        if latencies:
            p50, p95, p99 = (storm_drill.percentile(latencies, p) for p in (50, 95, 99))
            write(f"Raise latency: p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, "
                  f"max {max(latencies):.1f} ms")  # fmt: skip
        write(f"Folded by the storm guard: {storm_drill.folded(storm)} "
              f"(thresholds: {settings.STORM_SOURCE_THRESHOLD} per source, "
              f"{settings.STORM_GLOBAL_THRESHOLD} in all, per {settings.STORM_WINDOW_SECONDS} s; "
              f"0 = off)")  # fmt: skip
        if silenced := storm_drill.silenced_otherwise(storm):
            write(f"Silenced by a silence, rule or inhibition: {silenced}")
        for alarm in storm.storm_alarms():
            due = (
                f", digest due {alarm.next_escalation_at:%H:%M:%S}"
                if alarm.next_escalation_at
                else ""
            )
            write(f"Storm alarm {alarm.pk}: {alarm.title} ({alarm.status}{due})")
        under_way = counts["pending"] + counts["sending"]
        write(f"Notifications sent: {counts['sent']} (failed {counts['failed']}, "
              f"still under way {under_way}, cancelled {counts['cancelled']})")  # fmt: skip
