"""manage.py validateconfig: one line per configuration problem; exits non-zero when any."""

from django.core.management.base import BaseCommand, CommandError

from configuration.checks import problems


class Command(BaseCommand):
    help = (
        "Check channel configs, that every escalation policy is used and reaches somebody, "
        "that every enabled device is mapped, and that every device's alarms have a policy."
    )

    def handle(self, *args, **options):
        found = problems()
        for problem in found:
            self.stdout.write(str(problem))
        if found:
            raise CommandError(f"{len(found)} configuration problem(s)")
        self.stdout.write("configuration OK")
