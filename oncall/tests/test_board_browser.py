"""The board in a real browser: who is on call for the teams the dispatcher is in, the team
filter (for the header and the cards), and a card that says its step found nobody on call."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import Alarm
from alarms.tests.test_board_browser import browser, open_board, server  # noqa: F401 (fixtures)
from alarms.timeline import SYSTEM
from conftest import wait_until
from escalation.models import EscalationPolicy, EscalationStep
from oncall.models import Team

from .making import schedule

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def teams(make_person, make_device):
    reception, lab = Team.objects.create(name="Reception"), Team.objects.create(name="Lab")
    dana = User.objects.create_user("dana", password="pw")
    dana.groups.add(Group.objects.get(name="Dispatch"))
    reception.members.add(make_person("Dana", user=dana))
    schedule(dict(person=make_person("Alice")), name="Front desk", team=reception)
    nights = schedule(name="Lab nights", team=lab)  # nobody, no fallback
    alarms = {}
    for team, targets in ((reception, {}), (lab, {"schedules": [nights]})):
        policy = EscalationPolicy.objects.create(name=f"{team.name} policy", team=team)
        step = EscalationStep.objects.create(policy=policy, order=0)
        for key, rows in targets.items():
            getattr(step, key).set(rows)
        device, _ = make_device(f"{team.name} button", default_policy=policy)
        alarms[team.name] = lifecycle.raise_alarm(
            source="api", dedup_key=team.name, title=f"{team.name} alarm", device=device,
            actor=SYSTEM,
        ).alarm  # fmt: skip
    return alarms


def test_on_call_by_team_and_a_step_that_found_nobody(server, browser, teams):  # noqa: F811
    page = open_board(browser, server, "dana", arrived=".card")
    on_call = page.locator("#on-call-list li")
    on_call.first.wait_for()
    wait_until(lambda: "Front desk: Alice" in on_call.first.text_content(), timeout=5)
    assert on_call.count() == 1  # Dana's own team only
    assert "next hand-off" not in on_call.first.text_content()  # Alice is on call all along
    assert page.locator(".card").count() == 2

    page.select_option("#filter-team", label="Lab")
    wait_until(lambda: "Lab nights: nobody on call" in on_call.first.text_content(), timeout=5)
    assert "gap" in on_call.first.get_attribute("class")
    wait_until(lambda: page.locator(".card").count() == 1, timeout=5)
    assert page.locator(".card .title").text_content() == "Lab alarm"

    lab_alarm = teams["Lab"]
    Alarm.objects.filter(pk=lab_alarm.pk).update(
        next_escalation_at=timezone.now() - timedelta(seconds=1)
    )
    assert engine.run_due_step(lab_alarm.pk)
    gap = page.locator(".card .nobody-on-call")
    gap.wait_for(state="visible", timeout=5000)
    assert "Nobody on call in schedule 'Lab nights'" in gap.text_content()
    assert "nobody is paged for it" in gap.text_content()
