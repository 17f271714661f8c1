#!/usr/bin/env python
"""Django's command-line utility for the alarm broker."""

import os
import sys

# Commands that serve each connection on a thread of its own, as the web process serves each
# request: on PostgreSQL they borrow from a bounded pool rather than keep a connection a thread.
THREADED = ("listen_sia",)

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alarmsite.settings")
    if sys.argv[1:2] and sys.argv[1] in THREADED:
        os.environ.setdefault("DATABASE_POOL", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
