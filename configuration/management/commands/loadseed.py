"""manage.py loadseed FILE.yaml: create or update the configuration a seed file describes."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from configuration import seed


class Command(BaseCommand):
    help = (
        "Create or update sites, rooms, people, channels, escalation policies, devices, "
        "routing rules and inhibitions from a YAML seed file, in one transaction. "
        "${SEED_…} in channel configs is read from the environment."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The seed file (YAML, or JSON ending in .json).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and report, but save nothing."
        )

    def handle(self, *args, file, dry_run, **options):
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        content_type = "application/json" if path.suffix == ".json" else "application/yaml"
        try:
            report = seed.load(seed.parse(text, content_type), dry_run=dry_run)
        except seed.SeedError as exc:
            raise CommandError(f"{path}: {exc}; nothing was changed") from None
        for line in report.lines():
            self.stdout.write(line)
        if report.device_tokens:
            self.stdout.write(self.style.WARNING("New device tokens (shown once, store them now):"))
            for name, token in report.device_tokens.items():
                self.stdout.write(f"  {name}: {token}")
        if dry_run:
            self.stdout.write("Dry run: nothing was saved.")
        elif not report.changed:
            self.stdout.write("Nothing changed.")
