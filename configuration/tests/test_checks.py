"""validateconfig: each kind of configuration problem is found and named, a good configuration
passes, and the command's exit says which."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from configuration.checks import problems
from devices.models import Device, NotificationRule, Person
from escalation.models import EscalationPolicy, EscalationStep, RoutingRule
from notifications.models import NotificationChannel

from .test_seed import EXAMPLE, EXAMPLE_ENV

pytestmark = pytest.mark.django_db


@pytest.fixture
def good(make_policy, alice, make_device):
    """A small configuration with nothing wrong: a global default that emails Alice, and a
    desk phone in a room."""
    policy = make_policy([(0, [alice], [])], name="Default", is_default=True)
    device, _ = make_device()
    return policy, device


def found() -> list[str]:
    return [str(problem) for problem in problems()]


def test_a_good_configuration_has_no_problems(good):
    out = StringIO()

    call_command("validateconfig", stdout=out)

    assert found() == []
    assert out.getvalue() == "configuration OK\n"


def test_the_example_seed_has_no_problems(monkeypatch):
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    call_command("loadseed", str(EXAMPLE), stdout=StringIO())

    assert found() == []


def test_a_channel_whose_config_its_transport_refuses_is_named(good):
    NotificationChannel.objects.create(kind="slack", name="Ops Slack", config={"url": "ftp://x"})
    NotificationChannel.objects.create(
        kind="zammad", name="Tickets", config={"url": "https://zammad.example"}
    )

    assert found() == [
        """channel "Ops Slack": config: 'url' must be an http(s) URL.""",
        """channel "Tickets": config: 'token' is required.""",
    ]


def test_a_policy_nothing_uses_is_named(good, make_policy, alice):
    make_policy([(0, [alice], [])], name="Forgotten")
    used_by_rule = make_policy([(0, [alice], [])], name="Fire")
    RoutingRule.objects.create(name="Fire", matchers='kind="fire"', policy=used_by_rule)
    disabled_rule = make_policy([(0, [alice], [])], name="Old")
    RoutingRule.objects.create(name="Old", policy=disabled_rule, enabled=False)

    assert found() == [
        'policy "Forgotten": nothing uses it: no enabled routing rule, device or site names it '
        "and it is not the global default",
        'policy "Old": nothing uses it: no enabled routing rule, device or site names it and it '
        "is not the global default",
    ]


def test_a_policy_without_steps_is_named(good, make_policy, site):
    site.default_policy = make_policy([], name="Empty")
    site.save()

    assert found() == ['policy "Empty": it has no steps']


def test_a_policy_whose_steps_reach_nobody_is_named(good, make_policy, make_person, site):
    gone = make_person("Gone", active=False)
    no_email = make_person("No email", email="")
    muted = NotificationChannel.objects.create(
        kind="webhook", name="Muted", config={"url": "http://127.0.0.1:9/"}, enabled=False
    )
    site.default_policy = make_policy([(0, [gone], [muted]), (60, [no_email], [])], name="Ghosts")
    site.save()

    assert found() == [
        'policy "Ghosts": no step reaches anybody (no active person with a contact point for the '
        "step's methods, no enabled channel with a destination)"
    ]


def test_a_step_sending_sms_without_a_gateway_is_named(good):
    policy, _ = good
    EscalationStep.objects.filter(policy=policy).update(methods=["email", "sms"])

    assert found() == [
        'policy "Default": step 1 sends sms, but no enabled channel carries sms',
    ]
    NotificationChannel.objects.create(
        kind="sms_http", name="SMS", config={"url": "http://127.0.0.1:9/sms"}
    )
    assert found() == []


def test_a_step_following_personal_rules_reaches_whom_their_rules_reach(good, alice):
    policy, _ = good
    EscalationStep.objects.filter(policy=policy).update(methods=["personal"])
    assert found() == []  # Alice has no rules: she is emailed

    alice.email = ""
    alice.save()
    NotificationRule.objects.create(person=alice, method="sms")
    assert found() == [
        'policy "Default": no step reaches anybody (no active person with a contact point for the '
        "step's methods, no enabled channel with a destination)"
    ]
    NotificationChannel.objects.create(
        kind="sms_http", name="SMS", config={"url": "http://127.0.0.1:9/sms"}
    )
    alice.phone = "+442079460018"
    alice.save()
    assert found() == []


def test_an_unmapped_device_is_named_but_an_integration_is_not(good):
    Device.objects.create(name="Loose button", kind=Device.Kind.GENERIC)
    Device.objects.create(name="Loose and off", kind=Device.Kind.GENERIC, enabled=False)
    Device.objects.create(name="Alertmanager", kind=Device.Kind.ALERTMANAGER)

    assert found() == ['device "Loose button": The device is not mapped to a room or a person.']


def test_without_a_global_default_a_device_no_policy_takes_is_named(good, make_policy, alice):
    policy, device = good
    policy.is_default = False
    policy.save()
    # Used, but only by a rule that takes some of the phone's alarms.
    RoutingRule.objects.create(name="Nights", start_time="18:00", end_time="08:00", policy=policy)

    assert found() == [
        'device "Desk phone 1": no policy takes all its alarms: no default policy (device or '
        "site), no routing rule that matches them whatever their time, severity or labels, "
        "and no global default policy"
    ]


@pytest.mark.parametrize(
    "route",
    [
        "device default",
        "site default",
        "rule for its room",
        "rule for its source",
    ],
)
def test_a_device_default_a_site_default_or_a_matching_rule_routes_a_device(good, route):
    policy, device = good
    policy.is_default = False
    policy.save()
    if route == "device default":
        device.default_policy = policy
        device.save()
    elif route == "site default":
        device.site.default_policy = policy
        device.site.save()
    elif route == "rule for its room":
        RoutingRule.objects.create(name="Room", room=device.room, policy=policy)
    else:
        RoutingRule.objects.create(name="Phones", source="yealink", policy=policy)

    assert found() == []


def test_a_rule_for_another_source_does_not_route_a_device(good):
    policy, _ = good
    policy.is_default = False
    policy.save()
    RoutingRule.objects.create(name="Monitoring", source="alertmanager", policy=policy)

    assert [p.name for p in problems()] == ["Desk phone 1"]


def test_validateconfig_prints_each_problem_and_fails(good):
    Device.objects.create(name="Loose button", kind=Device.Kind.GENERIC)
    EscalationPolicy.objects.create(name="Empty")
    out = StringIO()

    with pytest.raises(CommandError, match=r"3 configuration problem\(s\)"):
        call_command("validateconfig", stdout=out)

    assert out.getvalue().splitlines() == [
        'policy "Empty": nothing uses it: no enabled routing rule, device or site names it and '
        "it is not the global default",
        'policy "Empty": it has no steps',
        'device "Loose button": The device is not mapped to a room or a person.',
    ]
    assert Person.objects.count() == 1  # checking changed nothing
