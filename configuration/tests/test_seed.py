"""Configuration as a file: loadseed, exportseed and POST /v1/admin/seed create or update the
configuration idempotently, in one transaction, and write it back out the same way."""

import json
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from accounts.models import ApiToken, AuditEntry
from configuration import seed, seed_export
from devices.models import Device, Person, Room, Site
from escalation.models import EscalationPolicy, EscalationStep, Inhibition, RoutingRule
from notifications.models import NotificationChannel

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "seed.example.yaml"
EXAMPLE_ENV = {
    "SEED_SMS_API_KEY": "sms-key-0123456789",
    "SEED_SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T0/B0/secret-path-xyz",
}

SMALL = """
sites:
  - name: Clinic North
    rooms: [Reception, Kitchen]
people:
  - name: Alice
    email: alice@example.org
    phone: "+442079460018"
  - name: Bob
    email: bob@example.org
channels:
  - name: Ops webhook
    kind: webhook
    config:
      url: http://127.0.0.1:9/hook
      secret: ${SEED_OPS_WEBHOOK_SECRET}
policies:
  - name: Default
    is_default: true
    steps:
      - persons: [Alice]
        methods: [email]
        channels: [Ops webhook]
      - delay_seconds: 60
        persons: [Alice, Bob]
        methods: [email, sms]
devices:
  - name: Desk phone 1
    kind: yealink
    site: Clinic North
    room: Reception
    person: Alice
routing_rules:
  - name: Nights
    order: 5
    days: mon-fri
    start_time: 18:00
    end_time: "08:00"
    time_zone: Europe/Berlin
    policy: Default
inhibitions:
  - name: Power
    source_matchers: '{alertname="Power"}'
    target_matchers: '{severity="warning"}'
    equal: site
"""
ENV = {"SEED_OPS_WEBHOOK_SECRET": "s3cret-value-42"}


def load(text: str = SMALL, environ=None, **kwargs) -> seed.Report:
    return seed.load(seed.parse(text), environ=ENV if environ is None else environ, **kwargs)


def edited(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_a_seed_creates_every_object_it_names():
    report = load()

    assert report.counts()["people"] == {"created": 2, "updated": 0, "unchanged": 0}
    assert report.objects["rooms"]["created"] == [
        "Clinic North / Reception",
        "Clinic North / Kitchen",
    ]
    device = Device.objects.get(name="Desk phone 1")
    assert (device.room.name, device.site.name, device.person.name) == (
        "Reception",
        "Clinic North",
        "Alice",
    )
    assert Device.by_token(report.device_tokens["Desk phone 1"]) == device
    policy = EscalationPolicy.objects.get(name="Default")
    assert policy.is_default
    steps = list(policy.steps.order_by("order"))
    assert [(s.delay_seconds, s.methods) for s in steps] == [(0, ["email"]), (60, ["email", "sms"])]
    assert sorted(p.name for p in steps[1].persons.all()) == ["Alice", "Bob"]
    assert [c.name for c in steps[0].channels.all()] == ["Ops webhook"]
    channel = NotificationChannel.objects.get(name="Ops webhook")
    assert channel.config["secret"] == "s3cret-value-42"
    rule = RoutingRule.objects.get(name="Nights")
    assert (str(rule.start_time), str(rule.end_time), rule.policy) == (
        "18:00:00",
        "08:00:00",
        policy,
    )
    assert Inhibition.objects.get(name="Power").equal == "site"


def test_loading_the_same_seed_twice_changes_nothing_the_second_time():
    load()
    stored_hash = Device.objects.get(name="Desk phone 1").token_hash
    step_ids = set(EscalationStep.objects.values_list("pk", flat=True))

    again = load()

    assert not again.changed
    assert again.device_tokens == {}
    assert all(c["created"] == c["updated"] == 0 for c in again.counts().values())
    assert again.objects["devices"]["unchanged"] == ["Desk phone 1"]
    assert again.objects["rooms"]["unchanged"] == [
        "Clinic North / Reception",
        "Clinic North / Kitchen",
    ]
    assert Device.objects.get(name="Desk phone 1").token_hash == stored_hash
    assert set(EscalationStep.objects.values_list("pk", flat=True)) == step_ids


def test_a_changed_entry_is_updated_and_the_rest_reported_unchanged():
    load()
    text = edited(SMALL, "bob@example.org", "robert@example.org")
    text = edited(text, "delay_seconds: 60", "delay_seconds: 90")

    report = load(text)

    assert report.objects["people"] == {"created": [], "updated": ["Bob"], "unchanged": ["Alice"]}
    assert report.objects["policies"]["updated"] == ["Default"]
    assert report.objects["devices"]["unchanged"] == ["Desk phone 1"]
    assert Person.objects.get(name="Bob").email == "robert@example.org"
    assert list(EscalationStep.objects.values_list("delay_seconds", flat=True)) == [0, 90]


def test_a_key_left_out_keeps_the_stored_value():
    load()
    Device.objects.filter(name="Desk phone 1").update(rate_limit_per_minute=5)

    report = load()

    assert report.objects["devices"]["unchanged"] == ["Desk phone 1"]
    assert Device.objects.get(name="Desk phone 1").rate_limit_per_minute == 5


def test_a_policy_gets_exactly_the_steps_listed():
    load()
    text = edited(SMALL, "      - delay_seconds: 60\n        persons: [Alice, Bob]\n        "
                  "methods: [email, sms]\n", "")  # fmt: skip

    load(text)

    assert EscalationStep.objects.filter(policy__name="Default").count() == 1


def test_a_policy_may_damp_flapping_monitoring_alarms_and_exports_so():
    load(edited(SMALL, "    is_default: true\n", "    is_default: true\n    damp_flapping: true\n"))

    assert EscalationPolicy.objects.get(name="Default").damp_flapping is True
    exported = seed_export.export()
    assert exported["policies"][0]["damp_flapping"] is True


def test_a_bad_entry_rolls_back_everything_and_names_the_entry_and_field():
    text = edited(SMALL, "    person: Alice\n", "    person: Alice\n  - name: Desk phone 2\n"
                  "    site: Clinic North\n    room: Laundry\n")  # fmt: skip

    with pytest.raises(seed.SeedError) as failed:
        load(text)

    assert str(failed.value) == (
        'devices[1] "Desk phone 2": room "Laundry" does not exist at site "Clinic North"'
    )
    assert not Person.objects.exists() and not Site.objects.exists()
    assert not NotificationChannel.objects.exists() and not EscalationPolicy.objects.exists()


def test_a_value_the_admin_would_refuse_is_refused_with_its_field():
    text = edited(SMALL, '"+442079460018"', '"0301234"')

    with pytest.raises(seed.SeedError, match=r'^people\[0\] "Alice": phone: .*E\.164'):
        load(text)

    assert not Person.objects.exists()


def test_a_channel_config_is_checked_by_its_transport():
    text = edited(SMALL, "url: http://127.0.0.1:9/hook", "url: not a url")

    with pytest.raises(seed.SeedError) as failed:
        load(text)

    assert str(failed.value) == (
        """channels[0] "Ops webhook": config: 'url' must be an http(s) URL."""
    )


def test_a_routing_rule_the_model_refuses_is_refused():
    text = edited(SMALL, "    policy: Default\ninhibitions", "inhibitions")

    with pytest.raises(seed.SeedError, match=r'routing_rules\[0\] "Nights": Choose what the rule'):
        load(text)


def test_an_unknown_key_is_refused_by_name():
    text = edited(SMALL, "    kind: yealink\n", "    kind: yealink\n    rom: Reception\n")

    with pytest.raises(seed.SeedError, match=r'devices\[0\] "Desk phone 1": unknown key\(s\) rom'):
        load(text)


def test_a_missing_environment_variable_is_named():
    with pytest.raises(seed.SeedError) as failed:
        load(environ={})

    assert str(failed.value) == (
        'channels[0] "Ops webhook": config.secret: environment variable '
        "SEED_OPS_WEBHOOK_SECRET is not set"
    )


def test_only_seed_variables_are_substituted():
    text = edited(SMALL, "${SEED_OPS_WEBHOOK_SECRET}", "${SECRET_KEY}")

    with pytest.raises(seed.SeedError, match=r"only variables named SEED_"):
        load(text, environ={"SECRET_KEY": "the server's own"})


def test_a_document_whose_aliases_expand_beyond_reason_is_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]  # fmt: skip

    with pytest.raises(seed.SeedError, match="more than 100000 values"):
        seed.parse("\n".join(lines))


def test_an_existing_device_keeps_its_token():
    token = load().device_tokens["Desk phone 1"]
    text = edited(SMALL, "    person: Alice\n", "    person: Bob\n")

    report = load(text)

    assert report.objects["devices"]["updated"] == ["Desk phone 1"]
    assert report.device_tokens == {}
    assert Device.by_token(token).person.name == "Bob"


def test_a_seed_takes_the_global_default_from_another_policy(make_policy):
    old = make_policy([], name="Old default", is_default=True)

    report = load()

    old.refresh_from_db()
    assert not old.is_default
    assert EscalationPolicy.objects.get(is_default=True).name == "Default"
    assert report.objects["policies"] == {
        "created": ["Default"], "updated": ["Old default"], "unchanged": [],
    }  # fmt: skip


def test_two_global_defaults_in_one_seed_are_refused():
    text = SMALL.replace("policies:\n", "policies:\n  - name: Other\n    is_default: true\n", 1)

    with pytest.raises(seed.SeedError, match=r'policies\[1\] "Default": is_default: policies\[0\]'):
        load(text)


def test_dry_run_reports_but_saves_nothing():
    report = load(dry_run=True)

    assert report.dry_run and report.objects["devices"]["created"] == ["Desk phone 1"]
    assert report.device_tokens == {}
    assert not Device.objects.exists() and not Person.objects.exists()


def test_export_then_load_into_an_empty_database_then_export_gives_the_same_file():
    seed.load(seed.parse(EXAMPLE.read_text()), environ=EXAMPLE_ENV)
    RoutingRule.objects.create(name="Reception only", site=Site.objects.get(name="Clinic North"),
                               room=Room.objects.get(site__name="Clinic North", name="Reception"),
                               set_severity="high")  # fmt: skip
    first = seed_export.dump(seed_export.export())
    for value in EXAMPLE_ENV.values():
        assert value not in first
    assert "${SEED_ON_CALL_SLACK_URL}" in first and "${SEED_SMS_GATEWAY_URL}" in first
    stored = dict(NotificationChannel.objects.values_list("name", "config"))

    for model in (RoutingRule, Inhibition, Device, Room, Site, EscalationPolicy, Person,
                  NotificationChannel):  # fmt: skip
        model.objects.all().delete()
    environ = {"SEED_ON_CALL_SLACK_URL": stored["On-call Slack"]["url"],
               "SEED_SMS_GATEWAY_URL": stored["SMS gateway"]["url"]}  # fmt: skip
    report = seed.load(seed.parse(first), environ=environ)
    second = seed_export.dump(seed_export.export())

    assert second == first
    assert not report.objects["devices"]["unchanged"]
    assert dict(NotificationChannel.objects.values_list("name", "config")) == stored


def test_the_example_seed_loads_cleanly(monkeypatch):
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    out = StringIO()

    call_command("loadseed", str(EXAMPLE), stdout=out)

    text = out.getvalue()
    assert "sites: 2 created (Clinic North, Clinic South)" in text
    assert "New device tokens (shown once" in text
    token = text.split("Reception North desk phone: ")[1].split()[0]
    assert Device.by_token(token).name == "Reception North desk phone"
    assert EscalationPolicy.objects.get(is_default=True).steps.count() == 3
    assert RoutingRule.objects.get(name="Outside business hours").outside_window
    again = StringIO()
    call_command("loadseed", str(EXAMPLE), stdout=again)
    assert "Nothing changed." in again.getvalue() and "token" not in again.getvalue()


def test_loadseed_stops_with_the_error_and_changes_nothing(tmp_path, seed_env):
    path = tmp_path / "bad.yaml"
    path.write_text(edited(SMALL, "kind: webhook", "kind: carrier-pigeon"))

    with pytest.raises(CommandError, match=r'channels\[0\] "Ops webhook": kind: .*nothing was'):
        call_command("loadseed", str(path), stdout=StringIO())

    assert not Site.objects.exists()


def test_exportseed_writes_a_file_that_loads(tmp_path):
    load()
    path = tmp_path / "out.yaml"

    call_command("exportseed", "--output", str(path), stderr=StringIO())

    document = yaml.safe_load(path.read_text())
    assert document["channels"][0]["config"]["secret"] == "${SEED_OPS_WEBHOOK_SECRET}"
    assert not seed.load(document, environ=ENV).changed


# --- POST /v1/admin/seed -------------------------------------------------------------------

URL = "/v1/admin/seed"


@pytest.fixture
def login(client, make_user):
    def as_role(role):
        client.force_login(make_user(role.lower(), role=role))
        return client

    return as_role


@pytest.fixture
def seed_env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def post(client, body=SMALL, content_type="application/yaml", query="", **headers):
    return client.post(URL + query, body, content_type=content_type, **headers)


def test_an_operator_loads_a_seed_over_the_api(login, seed_env):
    client = login("Operators")
    answer = post(client)

    assert answer.status_code == 200
    body = answer.json()
    assert body["changed"] and body["counts"]["devices"]["created"] == 1
    assert Device.by_token(body["device_tokens"]["Desk phone 1"]).name == "Desk phone 1"
    assert answer["Cache-Control"] == "no-store"
    audited = AuditEntry.objects.get(object_type="devices.Device", action="created")
    assert (audited.actor, audited.object_repr) == ("operators", "Desk phone 1")
    again = post(client).json()
    assert not again["changed"] and again["device_tokens"] == {}


def test_an_operators_api_token_loads_a_seed(client, make_user, seed_env):
    _, token = ApiToken.issue(make_user("ci", role="Operators"), "configuration pipeline")

    answer = post(client, query="?dry_run=true", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert answer.status_code == 200 and answer.json()["counts"]["sites"]["created"] == 1


def test_the_api_accepts_json_with_the_same_structure(login, seed_env):
    answer = post(login("Operators"), json.dumps(yaml.safe_load(SMALL)), "application/json")

    assert answer.status_code == 200 and Device.objects.filter(name="Desk phone 1").exists()


def test_a_dry_run_over_the_api_saves_nothing(login, seed_env):
    answer = post(login("Operators"), query="?dry_run=1", content_type="text/yaml")

    assert answer.status_code == 200
    assert answer.json()["dry_run"] and answer.json()["counts"]["people"]["created"] == 2
    assert not Person.objects.exists()


def test_a_nul_in_a_seed_is_a_400_naming_where_not_a_500(login, seed_env):
    document = yaml.safe_load(SMALL)
    document["people"][1]["name"] = "Bo\u0000b"

    answer = post(login("Operators"), json.dumps(document), "application/json")

    assert answer.status_code == 400
    assert answer.json()["error"].startswith("people[1].name: holds a NUL")
    assert not Person.objects.exists()


def test_a_bad_seed_over_the_api_is_answered_400_naming_the_entry(login, seed_env):
    answer = post(login("Operators"), edited(SMALL, "room: Reception", "room: Laundry"))

    assert answer.status_code == 400
    assert answer.json()["error"].startswith(
        'devices[0] "Desk phone 1": room "Laundry" does not exist at site "Clinic North"'
    )
    assert not Person.objects.exists()


def test_the_api_refuses_other_content_types_and_invalid_yaml(login, seed_env):
    client = login("Operators")

    assert post(client, content_type="text/plain").status_code == 415
    broken = post(client, "sites: [unclosed")
    assert broken.status_code == 400 and "not valid YAML" in broken.json()["error"]


def test_the_api_refuses_a_body_over_the_limit(login, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    answer = post(login("Operators"), "people: []\n" + "#" * 2000)

    assert answer.status_code == 413 and "error" in answer.json()


@pytest.mark.parametrize("role", ["Dispatch", "Viewers"])
def test_dispatch_and_viewers_cannot_load_a_seed(login, seed_env, role):
    answer = post(login(role))

    assert answer.status_code == 403 and "error" in answer.json()
    assert not Person.objects.exists()


def test_a_device_token_cannot_load_a_seed(client, make_device, seed_env):
    _, token = make_device(name="Panic button", kind=Device.Kind.GENERIC)

    answer = post(client, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert answer.status_code == 403 and "error" in answer.json()
    assert not Person.objects.exists()


def test_anonymous_cannot_load_a_seed(client, seed_env):
    answer = post(client)

    assert answer.status_code == 401 and "error" in answer.json()
    assert not Person.objects.exists()


WITH_RULES = edited(
    SMALL,
    '    phone: "+442079460018"\n',
    """    phone: "+442079460018"
    rules:
      - {method: sms, after_minutes: 0}
      - {method: voice, after_minutes: 5}
      - {method: email, urgency: low}
""",
)


def test_a_persons_notification_rules_load_export_and_load_again_unchanged():
    load(WITH_RULES)
    alice = Person.objects.get(name="Alice")
    assert list(alice.rules.values_list("urgency", "method", "delay_minutes")) == [
        ("high", "sms", 0), ("high", "voice", 5), ("low", "email", 0),
    ]  # fmt: skip
    exported = seed_export.export_person(alice)
    assert exported["rules"][1] == {"method": "voice", "after_minutes": 5, "urgency": "high"}

    assert load(WITH_RULES).objects["people"]["unchanged"] == ["Alice", "Bob"]
    changed = load(edited(WITH_RULES, "after_minutes: 5", "after_minutes: 3"))
    assert changed.objects["people"]["updated"] == ["Alice"]


def test_a_rule_for_an_unknown_contact_point_is_refused_by_name():
    with pytest.raises(seed.SeedError, match="rule 1: method"):
        load(edited(WITH_RULES, "method: sms", "method: pigeon"))
