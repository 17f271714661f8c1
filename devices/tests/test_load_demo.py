"""The demo data's command: what it prints reads as people count, and its Reception team's
rotation is what its policy pages first."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from escalation.models import EscalationPolicy
from oncall.models import Schedule, Team
from oncall.who import who_is_on_call


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


@pytest.mark.django_db
def test_the_demo_reception_team_has_a_day_night_rotation_its_policy_pages(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("load_demo", stdout=StringIO())
    call_command("load_demo", stdout=StringIO())  # a second run changes nothing
    team = Team.objects.get(name="Reception")
    policy = EscalationPolicy.objects.get(name="Demo: on call, then everyone")
    assert team.default_policy == policy and policy.team == team
    assert sorted(p.name for p in team.members.all()) == ["Alice Adams", "Bob Baker", "Carol Chen"]
    reception = Schedule.objects.get(name="Reception")
    assert list(policy.steps.get(order=0).schedules.all()) == [reception]
    now = timezone.now()
    names = [
        who_is_on_call("schedule", reception.pk, now + timedelta(hours=12 * n)).people[0].name
        for n in range(3)
    ]
    assert sorted(names) == ["Alice Adams", "Bob Baker", "Carol Chen"]  # each takes a turn
