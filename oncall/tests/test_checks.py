"""validateconfig sees on-call gaps: stretches of the next 14 days with nobody on call, and
the routing rules whose policy pages such a schedule."""

import pytest
from django.core.management import CommandError, call_command

from configuration.checks import problems
from escalation.models import EscalationPolicy, EscalationStep, RoutingRule

from .making import rotation, schedule

pytestmark = pytest.mark.django_db


def test_gaps_and_the_rules_that_page_them_are_reported(alice, bob):
    weekdays = schedule(dict(person=alice, days="mon-fri", start="08:00", end="18:00"),
                        name="Weekdays", fallback_person=bob)  # fmt: skip
    schedule(dict(person=alice), name="Always")
    policy = EscalationPolicy.objects.create(name="Days")
    EscalationStep.objects.create(policy=policy, order=0).schedules.set([weekdays])
    RoutingRule.objects.create(name="Everything", policy=policy)
    rotation([], name="Empty")
    found = {(p.kind, p.name): p.message for p in problems()}
    assert found[("schedule", "Weekdays")].startswith("nobody on call ")
    assert "and " in found[("schedule", "Weekdays")] and "more (Europe/Berlin)" in found[
        ("schedule", "Weekdays")]  # fmt: skip
    assert found[("schedule", "Weekdays")].endswith(": Bob (its fallback) is paged then")
    assert ("schedule", "Always") not in found
    assert found[("routing rule", "Everything")] == (
        "its policy 'Days' pages schedule 'Weekdays', which has nobody on call at times in the "
        "next 14 days"
    )
    assert found[("rotation", "Empty")] == "it has no participants"


def test_validateconfig_prints_them(alice, capsys):
    schedule(dict(person=alice, days="sat"), name="Saturdays")
    with pytest.raises(CommandError, match="1 configuration problem"):
        call_command("validateconfig")
    assert 'schedule "Saturdays": nobody on call ' in capsys.readouterr().out
