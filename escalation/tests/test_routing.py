"""Routing rules, defaults, silences and inhibitions: which policy an alarm follows, or why it
notifies nobody; through `route` and through the raise API, and the admin's test page."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import Alarm
from alarms.timeline import SYSTEM
from devices.models import Room
from escalation.models import Inhibition, RoutingRule, Silence
from escalation.routing import route
from notifications.models import Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def policies(make_policy, make_person):
    alice = make_person("Alice")
    return {name: make_policy([(0, [alice], [])], name=name) for name in ("Day", "Night", "Fire")}


def rule(name, order, **fields):
    return RoutingRule.objects.create(name=name, order=order, time_zone="UTC", **fields)


def alarm_for(device=None, **fields):
    fields.setdefault("source", "api")
    fields.setdefault("severity", "high")
    fields.setdefault("title", "Smoke")
    return Alarm(
        device=device,
        site=fields.pop("site", device.site if device else None),
        room=fields.pop("room", device.room if device else None),
        **fields,
    )


def test_the_first_matching_rule_wins(policies):
    rule("Fire to fire team", 1, matchers='kind="fire"', policy=policies["Fire"])
    rule("Everything by day", 2, policy=policies["Day"])

    fire = route(alarm_for(labels={"kind": "fire"}))
    other = route(alarm_for(labels={"kind": "water"}))

    assert fire.policies == [policies["Fire"]] and fire.reason == "rule Fire to fire team"
    assert other.policies == [policies["Day"]]
    assert [(c.rule.name, c.matched) for c in fire.checks] == [
        ("Fire to fire team", True),
        ("Everything by day", False),
    ]
    assert fire.checks[1].why == "an earlier rule decided"
    assert 'kind="fire" does not match' in other.checks[0].why


def test_continue_lets_later_rules_add_and_severity_overrides_carry_on(policies):
    rule("Raise labs", 1, matchers='room=~"Lab.*"', set_severity="critical", continue_matching=True)
    rule("Critical at night", 2, min_severity="critical", policy=policies["Night"],
         continue_matching=True)  # fmt: skip
    rule("Fire too", 3, policy=policies["Fire"])
    lab = Room(name="Lab 2")

    routed = route(alarm_for(room=lab, severity="warning"))

    assert routed.severity == "critical"
    assert routed.policies == [policies["Night"], policies["Fire"]]
    assert route(alarm_for(severity="warning")).policies == [policies["Fire"]]


@pytest.mark.parametrize(
    ("rule_fields", "alarm_fields", "matched"),
    [
        ({"source": "yealink"}, {"source": "yealink"}, True),
        ({"source": "yealink"}, {"source": "api"}, False),
        ({"min_severity": "high"}, {"severity": "critical"}, True),
        ({"min_severity": "high"}, {"severity": "warning"}, False),
        ({"matchers": 'site="Clinic North"'}, {}, True),  # the alarm's site as a label
        ({"matchers": 'device="Desk phone 1"'}, {}, True),
        ({"matchers": 'source="api", severity="high"'}, {}, True),
        ({"days": "mon-fri", "start_time": time(8), "end_time": time(18)}, {}, True),
        ({"days": "sat,sun"}, {}, False),
        ({"start_time": time(18), "end_time": time(8)}, {}, False),
        # "Outside business hours": Monday noon is inside them.
        (
            {
                "days": "mon-fri",
                "start_time": time(8),
                "end_time": time(18),
                "outside_window": True,
            },
            {},
            False,
        ),
        ({"days": "sat,sun", "outside_window": True}, {}, True),
    ],
)
def test_what_a_rule_matches(policies, make_device, rule_fields, alarm_fields, matched):
    device, _ = make_device()
    rule("Under test", 1, policy=policies["Fire"], **rule_fields)
    monday_noon = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    routed = route(alarm_for(device, **alarm_fields), monday_noon)

    assert routed.checks[0].matched is matched, routed.checks[0].why


def test_device_site_and_rule_scoped_matches(policies, make_device, site):
    device, _ = make_device()
    other_site_device, _ = make_device(name="Other", room=Room.objects.create(
        site=type(site).objects.create(name="Clinic South"), name="Hall"))  # fmt: skip
    rule("This phone", 1, device=device, policy=policies["Night"])
    rule("This site", 2, site=site, policy=policies["Day"])

    assert route(alarm_for(device)).policies == [policies["Night"]]
    assert route(alarm_for(other_site_device)).policies == []


def test_defaults_device_then_site_then_global(policies, make_device, site):
    device, _ = make_device(default_policy=policies["Night"])
    bare, _ = make_device(name="Bare phone")

    assert route(alarm_for(device)).reason == "default policy of device Desk phone 1"
    assert route(alarm_for(bare)).policies == []
    site.default_policy = policies["Day"]
    site.save()
    assert route(alarm_for(bare)).reason == "default policy of site Clinic North"
    policies["Fire"].is_default = True
    policies["Fire"].save()
    assert route(alarm_for()).policies == [policies["Fire"]]
    assert route(alarm_for()).reason == "the global default policy"


def test_a_silencing_rule_stores_the_alarm_but_notifies_nobody(client, policies, make_device):
    device, token = make_device(default_policy=policies["Day"])
    rule("Drills", 1, matchers='drill="yes"', silence=True)

    response = client.post(
        "/v1/alarms/raise", {"title": "Drill", "labels": {"drill": "yes"}},
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip

    alarm = Alarm.objects.get(pk=response.json()["alarm_id"])
    assert alarm.status == "triggered" and alarm.silenced_by == "routing rule Drills"
    assert alarm.policy is None and alarm.next_escalation_at is None
    assert alarm.events.get(kind="routed").text.startswith("Silenced by routing rule Drills")
    assert not Delivery.objects.exists()
    assert (
        client.get(f"/v1/alarms/{alarm.pk}/", HTTP_AUTHORIZATION=f"Bearer {token}").json()[
            "silenced_by"
        ]
        == "routing rule Drills"
    )


def test_a_rule_routes_an_api_alarm_and_the_timeline_names_it(client, policies, make_device):
    device, token = make_device(default_policy=policies["Day"])
    fire = rule("Fire", 1, matchers='kind="fire"', policy=policies["Fire"], set_severity="critical")

    response = client.post(
        "/v1/alarms/raise", {"title": "Smoke", "severity": "warning", "labels": {"kind": "fire"}},
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip

    alarm = Alarm.objects.get(pk=response.json()["alarm_id"])
    assert (alarm.policy, alarm.severity) == (policies["Fire"], "critical")
    routed = alarm.events.get(kind="routed")
    assert routed.text == "Policy Fire: rule Fire"
    assert routed.detail["rules"] == [fire.pk]


def test_silences_apply_only_while_they_last(policies, make_device):
    device, _ = make_device(default_policy=policies["Day"])
    now = timezone.now()
    Silence.objects.create(matchers='site="Clinic North"', starts_at=now - timedelta(hours=1),
                           ends_at=now + timedelta(hours=1), created_by="Olga",
                           comment="Fire panel maintenance")  # fmt: skip
    Silence.objects.create(
        matchers='site="Clinic North"',
        starts_at=now + timedelta(hours=2),
        ends_at=now + timedelta(hours=3),
        created_by="Olga",
        comment="Later",
    )

    silenced = route(alarm_for(device), now)
    later = route(alarm_for(device), now + timedelta(hours=1, minutes=1))

    assert silenced.silenced_by.endswith("(Fire panel maintenance) by Olga")
    assert later.silenced_by == "" and later.policies == [policies["Day"]]


def test_an_expired_silence_does_not_notify_alarms_closed_meanwhile(policies, make_device):
    device, _ = make_device(default_policy=policies["Day"])
    now = timezone.now()
    silence = Silence.objects.create(matchers='site="Clinic North"', starts_at=now,
                                     ends_at=now + timedelta(hours=1), created_by="Olga",
                                     comment="Maintenance")  # fmt: skip
    outcome = lifecycle.raise_alarm(source="api", dedup_key="k", title="Door", actor=SYSTEM,
                                    device=device)  # fmt: skip
    lifecycle.resolve(outcome.alarm.pk, SYSTEM)
    silence.ends_at = now
    silence.save()

    alarm = Alarm.objects.get(pk=outcome.alarm.pk)
    assert alarm.status == "resolved" and alarm.silenced_by.startswith(f"silence {silence.pk}")
    assert alarm.next_escalation_at is None and not Delivery.objects.exists()


def test_an_open_site_alarm_inhibits_the_room_alarms_of_its_site(policies, make_device, site):
    device, _ = make_device(default_policy=policies["Day"])
    Inhibition.objects.create(name="Power out", source_matchers='kind="power"',
                              target_matchers='kind="room"', equal="site")  # fmt: skip
    power = lifecycle.raise_alarm(
        source="api",
        dedup_key="power",
        title="Power failure",
        labels={"kind": "power"},
        actor=SYSTEM,
        device=device,
    ).alarm

    same_site = route(alarm_for(device, labels={"kind": "room"}))
    other_site = route(alarm_for(labels={"kind": "room"}, site=type(site).objects.create(name="X")))
    not_a_target = route(alarm_for(device, labels={"kind": "door"}))

    assert same_site.silenced_by == "inhibition Power out: open alarm 'Power failure'"
    assert other_site.silenced_by == "" and not_a_target.silenced_by == ""
    lifecycle.resolve(power.pk, SYSTEM)
    assert route(alarm_for(device, labels={"kind": "room"})).silenced_by == ""


def test_the_admin_test_page_shows_rules_policies_and_silences(client, policies, make_device):
    device, _ = make_device()
    rule("Night shift", 1, start_time=time(18), end_time=time(8), policy=policies["Night"])
    rule("Day shift", 2, policy=policies["Day"])
    Silence.objects.create(matchers='team="lab"', starts_at=timezone.now() - timedelta(minutes=1),
                           ends_at=timezone.now() + timedelta(hours=1), created_by="Olga",
                           comment="<b>Lab</b> works")  # fmt: skip
    client.force_login(User.objects.create_superuser("root", password="pw"))
    url = "/admin/escalation/routingrule/test/"

    night = client.get(
        url,
        {
            "title": "T",
            "source": "api",
            "device": device.pk,
            "severity": "high",
            "labels": "",
            "at": "2026-11-23T23:00",
        },
    )
    lab = client.get(url, {"title": "T", "source": "api", "severity": "high",
                           "labels": "team=lab", "at": ""})  # fmt: skip

    assert night.status_code == 200
    page = night.content.decode()
    assert "<td>Night shift</td>" in page and "<td>yes</td>" in page
    assert "an earlier rule decided" in page
    assert "after 0 s: Alice by email" in page
    assert "&lt;b&gt;Lab&lt;/b&gt; works" in lab.content.decode()  # escaped, never markup
    assert "nobody would be notified" in lab.content.decode()
    assert "Test routing" in client.get("/admin/escalation/routingrule/").content.decode()
    assert not Alarm.objects.exists() and not Delivery.objects.exists()


def test_a_rule_saved_in_the_admin_applies_to_the_next_alarm(admin_client, policies, settings):
    rule("Day", 1, policy=policies["Day"])
    assert route(alarm_for()).policies == [policies["Day"]]  # read and kept

    admin_client.post(
        "/admin/escalation/routingrule/add/",
        {"name": "Fire first", "order": 0, "enabled": "on", "matchers": 'kind="fire"',
         "policy": policies["Fire"].pk, "time_zone": "UTC"},
    )  # fmt: skip

    assert route(alarm_for(labels={"kind": "fire"})).policies == [policies["Fire"]]
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # no Redis: read every time, still right
    RoutingRule.objects.filter(name="Fire first").update(enabled=False)  # no signal
    assert route(alarm_for(labels={"kind": "fire"})).policies == [policies["Day"]]


def test_parallel_policies_run_each_step_at_its_own_time(make_policy, make_person, settings):
    alice, bob, carol = make_person("Alice"), make_person("Bob"), make_person("Carol", active=False)
    first = make_policy([(0, [carol], []), (300, [alice], [])], name="Ward")
    second = make_policy([(60, [bob], []), (60, [bob], [])], name="Security")
    rule("Ward", 1, policy=first, continue_matching=True)
    rule("Security too", 2, policy=second)

    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="Intruder", actor=SYSTEM).alarm

    assert [(s["policy"], s["delay_seconds"]) for s in alarm.steps_snapshot] == [
        ("Ward", 0), ("Security", 60), ("Security", 60), ("Ward", 180)]  # fmt: skip
    assert alarm.policy == first
    assert alarm.events.get(kind="routed").text == (
        "Policies Ward + Security in parallel: rule Ward, rule Security too"
    )
    # Carol is inactive: the Ward's first step reaches nobody, but Security's step is not
    # pulled forward; it keeps its own time.
    assert engine.run_due_step(alarm.pk)
    alarm.refresh_from_db()
    assert alarm.current_step == 0
    assert alarm.events.get(kind="step_skipped").text.endswith("(Ward): nobody to notify")
    due_in = (alarm.next_escalation_at - timezone.now()).total_seconds()
    assert 55 < due_in <= 60


def test_the_test_page_can_replay_a_stored_alarm(admin_client, policies, make_device):
    device, _ = make_device()
    rule("Lab", 1, matchers='team="lab"', policy=policies["Fire"])
    alarm = lifecycle.raise_alarm(
        source="api", dedup_key="k", title="Spill", labels={"team": "lab"}, actor=SYSTEM,
        device=device,
    ).alarm  # fmt: skip

    page = admin_client.get(f"/admin/alarms/alarm/{alarm.pk}/change/").content.decode()
    assert f"/admin/escalation/routingrule/test/?alarm={alarm.pk}" in page
    replay = admin_client.get("/admin/escalation/routingrule/test/", {"alarm": str(alarm.pk)})

    assert replay.status_code == 200
    assert "<td>Lab</td>" in replay.content.decode() and "<td>yes</td>" in replay.content.decode()
    assert 'value="Spill"' in replay.content.decode()


@pytest.mark.parametrize("equal", ["site, labels__x", "site; room", "1st"])
def test_an_inhibition_shares_only_label_names(equal):
    inhibition = Inhibition(name="X", source_matchers='a="b"', target_matchers='c="d"', equal=equal)
    with pytest.raises(ValidationError):
        inhibition.clean()
