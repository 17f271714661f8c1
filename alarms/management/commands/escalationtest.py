"""Run an escalation policy with short delays on a test alarm and show each step firing."""

from django.core.management.base import BaseCommand, CommandError

from alarms import lifecycle
from alarms.drills import firing
from alarms.drills.follow import follow_until, policy_run

HELP = """Run an escalation policy on a test alarm whose step delays are shortened, showing each
step as it fires (step, time, who and which channels) and what became of each message, until
the policy's steps are exhausted or somebody acknowledges (the ACK link in the messages works);
then cancel the test alarm.

Only the test alarm's copy of the policy is shortened: the policy itself is not changed. By
default every delay (and the pause between repeat rounds) is multiplied by 0.05; --step-delay
caps each at that many seconds instead. The alarm is real and notifies the policy's real
people and channels; its title starts with "[TEST]" and it carries the label test="true".
Routing rules are skipped (the policy is named), silences still apply.

Needs the running Celery worker. Exits 0 when every step reached somebody and every message
was delivered (or the alarm was acknowledged); 1 otherwise, naming the problems."""

# Beyond the shortened schedule: time for the last messages (and their retries) to settle.
MARGIN_SECONDS = 60


class Command(BaseCommand):
    help = HELP

    def add_arguments(self, parser):
        parser.add_argument("policy", help="The escalation policy's name.")
        delays = parser.add_mutually_exclusive_group()
        delays.add_argument(
            "--delay-scale", type=float, default=0.05, metavar="FACTOR",
            help="Multiply each delay by this (0.05: one minute becomes 3 s).",
        )  # fmt: skip
        delays.add_argument(
            "--step-delay", type=float, metavar="SECONDS",
            help="Wait at most this long before each step and each repeat round.",
        )  # fmt: skip
        parser.add_argument(
            "--timeout", type=float,
            help="Seconds to follow it (default: the shortened schedule plus 60 s).",
        )  # fmt: skip

    def handle(self, *args, **options):
        if options["step_delay"] is not None:
            if options["step_delay"] < 0:
                raise CommandError("--step-delay must be 0 or more")
            cap = options["step_delay"]
            delay_of = lambda seconds: min(seconds, cap)  # noqa: E731
        else:
            if not 0 < options["delay_scale"] <= 1:
                raise CommandError("--delay-scale must be above 0 and at most 1")
            scale = options["delay_scale"]
            delay_of = lambda seconds: round(seconds * scale, 3)  # noqa: E731
        actor, run = firing.command_actor("escalationtest"), firing.new_run()
        try:
            policy = firing.find_policy(options["policy"])
        except firing.DrillRefused as exc:
            raise CommandError(str(exc)) from exc
        alarm = firing.raise_for_policy(policy, run, actor, delay_of)
        timeout = options["timeout"] or firing.schedule_seconds(alarm) + MARGIN_SECONDS
        self.stdout.write(f"Raised test alarm {alarm.pk}: {alarm.title}")
        try:
            verdict = follow_until(alarm, policy_run, timeout, self.stdout)
        finally:
            if lifecycle.cancel(alarm.pk, actor, "escalation test finished").changed:
                self.stdout.write(f"Cancelled test alarm {alarm.pk}")
        if not verdict.ok:
            raise CommandError(f"FAILED: {verdict.message}", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"OK: {verdict.message}"))
