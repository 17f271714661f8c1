"""manage.py exportseed [--output FILE]: the stored configuration as a seed file."""

import os

from django.core.management.base import BaseCommand, CommandError

from configuration import seed, seed_export


class Command(BaseCommand):
    help = (
        "Write the configuration as a seed file that loadseed reads. Secrets in channel "
        "configs are written as ${SEED_<CHANNEL>_<KEY>} placeholders; device tokens never."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout.")

    def handle(self, *args, output=None, **options):
        try:
            text = seed_export.dump(seed_export.export())
        except seed.SeedError as exc:
            raise CommandError(str(exc)) from None
        if not output:
            self.stdout.write(text, ending="")
            return
        # No secret is written, but the file still maps the whole installation: owner only.
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        self.stderr.write(f"Wrote {output}.")
