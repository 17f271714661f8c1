"""The audit trail: every configuration change with who, when, from where and what; secrets
and token hashes never written down."""

from datetime import timedelta

import pytest

from accounts.models import AuditEntry
from devices.models import Device, Person
from notifications.models import NotificationChannel

pytestmark = pytest.mark.django_db

SECRET_URL = "https://hooks.slack.example/services/T000/B000/very-secret-path"


@pytest.fixture
def operator(client, make_user):
    client.force_login(make_user("olga", role="Operators"))
    return client


def entries(**filters):
    return AuditEntry.objects.filter(**filters).order_by("id")


def test_a_change_in_the_admin_records_who_when_where_and_what(operator, make_device):
    device, _ = make_device("Desk phone 1", rate_limit_per_minute=30)
    operator.post(
        f"/admin/devices/device/{device.pk}/change/",
        {"name": "Desk phone 1", "kind": "yealink", "room": device.room_id,
         "site": device.site_id, "enabled": "on", "rate_limit_per_minute": 5},
        REMOTE_ADDR="192.0.2.44",
    )  # fmt: skip
    entry = entries(action="changed", object_type="devices.Device").get()
    assert entry.user.username == "olga" and entry.actor == "olga"
    assert entry.source_ip == "192.0.2.44"
    assert entry.object_repr == "Desk phone 1" and entry.object_id == str(device.pk)
    assert entry.changes == {"rate_limit_per_minute": [30, 5]}


def test_creating_and_deleting_are_recorded_with_the_whole_object(operator):
    # The page's notification rules (an inline) come with the form, none filled in.
    rules = {"rules-TOTAL_FORMS": "0", "rules-INITIAL_FORMS": "0"}
    operator.post("/admin/devices/person/add/", {"name": "Carol", "email": "carol@example.org",
                                                 "active": "on", **rules})  # fmt: skip
    carol = Person.objects.get(name="Carol")
    operator.post(f"/admin/devices/person/{carol.pk}/delete/", {"post": "yes"})
    created, deleted = entries(object_type="devices.Person")
    assert created.action == "created" and created.changes["email"] == "carol@example.org"
    assert deleted.action == "deleted" and deleted.object_repr == "Carol"


def test_a_channels_secrets_are_masked_on_the_trail(operator):
    channel = NotificationChannel.objects.create(
        kind="slack", name="Ops", config={"url": SECRET_URL}
    )
    channel.config = {"url": SECRET_URL + "-rotated"}
    channel.save()
    for entry in entries(object_type="notifications.NotificationChannel"):
        assert "very-secret" not in str(entry.changes)
    assert entries(action="created").last().changes["config"] == {"url": "***"}


def test_a_panels_key_is_never_shown_again_nor_written_on_the_trail(operator, site):
    form = {"name": "Intrusion panel", "kind": "sia", "site": site.pk, "enabled": "on",
            "rate_limit_per_minute": 30, "sia_account": "ab12",
            "sia_key": "0123456789ABCDEF"}  # fmt: skip
    operator.post("/admin/devices/device/add/", form)
    panel = Device.objects.get(name="Intrusion panel")
    page = operator.get(f"/admin/devices/device/{panel.pk}/change/").content.decode()
    operator.post(f"/admin/devices/device/{panel.pk}/change/",
                  {**form, "sia_key": "", "zones-TOTAL_FORMS": "0",
                   "zones-INITIAL_FORMS": "0"})  # fmt: skip
    kept = Device.objects.get(pk=panel.pk).sia_key
    operator.post(f"/admin/devices/device/{panel.pk}/change/",
                  {**form, "sia_key": "", "forget_sia_key": "on", "zones-TOTAL_FORMS": "0",
                   "zones-INITIAL_FORMS": "0"})  # fmt: skip

    assert (panel.sia_account, kept) == ("AB12", "0123456789ABCDEF")
    assert "0123456789ABCDEF" not in page
    assert Device.objects.get(pk=panel.pk).sia_key == ""
    trail = [entry.changes for entry in entries(object_type="devices.Device")]
    assert len(trail) == 2 and "0123456789ABCDEF" not in str(trail)
    assert trail[0]["sia_key"] == "(hidden)"


def test_a_token_rotation_is_recorded_without_the_token(make_device):
    device, _ = make_device("Panic button", kind=Device.Kind.GENERIC)
    old_hash = device.token_hash
    device.rotate_token(timedelta(hours=1))
    device.save(update_fields=Device.TOKEN_FIELDS)
    entry = entries(action="changed", object_type="devices.Device").get()
    assert entry.changes["token_hash"] == "changed"
    assert old_hash not in str(entry.changes) and device.token_hash not in str(entry.changes)
    assert entry.actor.startswith("command line")  # no request: the shell or a command


def test_who_is_in_a_step_is_recorded(operator, make_policy, alice, bob):
    policy = make_policy([(0, [alice], [])])
    step = policy.steps.get()
    step.persons.add(bob)
    entry = entries(object_type="escalation.EscalationStep", action="changed").last()
    assert entry.changes == {"people": {"added": ["Bob"]}}


def test_a_devices_last_seen_time_is_not_a_configuration_change(client, make_device):
    device, token = make_device("Panic button", kind=Device.Kind.GENERIC)
    before = AuditEntry.objects.count()
    client.post("/v1/alarms/raise", {"title": "Fall"}, content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert AuditEntry.objects.count() == before


def test_only_operators_read_the_trail_and_nobody_edits_it(operator, make_device):
    make_device("Desk phone 1")
    entry = AuditEntry.objects.first()
    assert operator.get("/admin/accounts/auditentry/").status_code == 200
    assert operator.get(f"/admin/accounts/auditentry/{entry.pk}/change/").status_code == 200
    operator.post(f"/admin/accounts/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
    assert (
        "Save"
        not in operator.get(f"/admin/accounts/auditentry/{entry.pk}/change/").content.decode()
    )
