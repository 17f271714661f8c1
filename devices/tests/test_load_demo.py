"""The demo data's command: what it prints about what it created reads as people count."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_load_demo_counts_the_policys_steps_from_1(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("load_demo", stdout=out)

    steps = [line.strip() for line in out.getvalue().splitlines() if "escalation step" in line]
    assert steps == [
        "escalation step 1 of Demo: on call, then everyone",
        "escalation step 2 of Demo: on call, then everyone",
    ]
