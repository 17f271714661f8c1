"""Devices and people: token handling, phone validation, and the admin that configures them."""

import hashlib
import re
from datetime import time, timedelta

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.acklinks import issue_ack_link
from alarms.models import CapFeed, InboundAddress, InboundMail, MetricRule, ScheduledAlarm
from alarms.timeline import SYSTEM
from devices.models import Device, PanelEventCode, PanelZone, Person, Room, Site
from escalation.models import Inhibition, RoutingRule, Silence
from notifications.models import ReplyCode
from responders.models import Reply

pytestmark = pytest.mark.django_db

YEALINK = "/v1/yealink/alarm"
TOKEN_IN_MESSAGE = re.compile(r"<code>([A-Za-z0-9_\-]+)</code>")
OUR_APPS = {"alarms", "devices", "escalation", "notifications", "responders"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- tokens -------------------------------------------------------------------------------


def test_a_new_device_gets_a_token_that_is_stored_only_as_its_sha256(make_device):
    device, token = make_device()

    assert len(token) >= 32
    assert device.token_hash == sha256(token)
    stored = Device.objects.filter(pk=device.pk).values().get()
    assert not any(token in str(value) for value in stored.values())


def test_the_issued_token_finds_its_device(make_device):
    device, token = make_device()

    assert Device.by_token(token) == device
    assert Device.by_token(token[:-1]) is None
    assert Device.by_token("") is None


def test_a_new_token_reads_one_row_and_takes_its_relations_from_what_is_kept(
    make_device, room, django_assert_num_queries
):
    person = Person.objects.create(name="Ann")
    first, first_token = make_device("Phone 1", person=person)
    second, second_token = make_device("Phone 2", person=person)

    found = Device.by_token(first_token)
    assert (found.room, found.room.site, found.site, found.person) == (
        room,
        room.site,
        room.site,
        person,
    )
    with django_assert_num_queries(1):  # the device; its room, site and person are kept
        found = Device.by_token(second_token)
    assert (found, found.room.name, found.site, found.person.name) == (
        second,
        room.name,
        room.site,
        "Ann",
    )
    with django_assert_num_queries(0):
        Device.by_token(second_token)

    room.name = "Renamed"
    room.save()  # a configuration change: what was kept is read again
    assert Device.by_token(first_token).room.name == "Renamed"


def test_the_issued_token_is_accepted_by_the_ingest(client, make_device):
    _, token = make_device()

    assert client.get(YEALINK, {"token": token}).status_code == 200


def test_every_device_gets_its_own_token(make_device):
    _, first = make_device("Phone 1")
    _, second = make_device("Phone 2")

    assert first != second


def test_rotating_the_token_invalidates_the_old_one(client, make_device):
    device, old = make_device()

    new = device.rotate_token()
    device.save()

    assert new != old
    assert Device.by_token(old) is None
    assert Device.by_token(new) == device
    assert client.get(YEALINK, {"token": old}).status_code == 404
    assert client.get(YEALINK, {"token": new}).status_code == 200


def test_saving_a_device_again_keeps_its_token(make_device):
    device, token = make_device()
    device.name = "Renamed phone"

    device.save()

    assert Device.by_token(token) == device


# --- mapping ------------------------------------------------------------------------------


def test_a_device_in_a_room_takes_the_rooms_site(make_device, room):
    device, _ = make_device(room=room)

    assert device.site == room.site


def test_a_device_cannot_be_in_a_room_of_another_site(make_device, room):
    other = Site.objects.create(name="Clinic South")
    device, _ = make_device(room=room)
    device.site = other

    with pytest.raises(ValidationError) as error:
        device.full_clean()

    assert "room" in error.value.message_dict


def test_a_device_with_neither_room_nor_person_reports_why_it_cannot_raise(make_device):
    device, _ = make_device(room=None)

    assert "not mapped" in device.mapping_problem


# --- people -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "030 12345678",  # no country code
        "+49 30 12345678",  # E.164 has no spaces
        "0049301234567",  # 00 instead of +
        "+1415555267",  # a digit short of a US number
        "+999123456",  # no such country
        "call me",
    ],
)
def test_a_phone_number_not_in_e164_form_is_rejected(number):
    person = Person(name="Alice", phone=number)

    with pytest.raises(ValidationError) as error:
        person.full_clean()

    assert "phone" in error.value.message_dict


def test_a_signal_number_not_in_e164_form_is_rejected():
    with pytest.raises(ValidationError) as error:
        Person(name="Alice", signal_number="0170 1234567").full_clean()

    assert "signal_number" in error.value.message_dict


@pytest.mark.parametrize("number", ["+493012345678", "+14155552671", "+447911123456"])
def test_a_phone_number_in_e164_form_is_accepted(number):
    Person(name="Alice", phone=number, signal_number=number).full_clean()


# --- admin --------------------------------------------------------------------------------


def test_adding_a_device_in_the_admin_shows_its_token_once(admin_client, room):
    response = admin_client.post(
        reverse("admin:devices_device_add"),
        {"name": "Reception phone", "kind": "yealink", "room": room.pk, "enabled": "on",
         "rate_limit_per_minute": 30},
        follow=True,
    )  # fmt: skip

    assert response.status_code == 200
    shown = [m for m in messages_of(response) if "Token for Reception phone" in m]
    assert len(shown) == 1
    assert "/v1/yealink/alarm?token=" in shown[0]
    token = TOKEN_IN_MESSAGE.search(shown[0]).group(1)
    device = Device.objects.get(name="Reception phone")
    assert Device.by_token(token) == device
    change_page = admin_client.get(reverse("admin:devices_device_change", args=[device.pk]))
    assert token not in change_page.content.decode()


def test_the_admin_action_issues_a_new_token_and_the_old_one_stops_working(
    admin_client, make_device
):
    device, old = make_device()

    response = admin_client.post(
        reverse("admin:devices_device_changelist"),
        {"action": "rotate_tokens", "_selected_action": [device.pk]},
        follow=True,
    )

    [shown] = [m for m in messages_of(response) if "Token for" in m]
    new = TOKEN_IN_MESSAGE.search(shown).group(1)
    assert Device.by_token(old) is None
    assert Device.by_token(new) == device


@pytest.fixture
def some_of_everything(make_person, make_policy, make_device, webhook_channel, room):
    """One of each thing the admin lists, linked the way a running system links them."""
    alice = make_person("Alice", phone="+493012345678")
    policy = make_policy([(0, [alice], [webhook_channel]), (60, [alice], [])])
    device, _ = make_device(person=alice, default_policy=policy)
    Room.objects.create(site=room.site, name="Lab")
    RoutingRule.objects.create(name="Labs at night", matchers='room=~"Lab.*"', policy=policy,
                               start_time=time(18), end_time=time(6))  # fmt: skip
    now = timezone.now()
    Silence.objects.create(matchers='drill="yes"', starts_at=now, ends_at=now + timedelta(hours=1),
                           created_by="Olga", comment="Fire drill")  # fmt: skip
    MetricRule.objects.create(name="Fridge warm", metric="fridge_c", operator=">", threshold=8)
    ScheduledAlarm.objects.create(name="Weekly test", title="Test", crontab="0 9 * * mon")
    Inhibition.objects.create(name="Power", source_matchers='kind="power"',
                              target_matchers='kind="room"', equal="site")  # fmt: skip
    alarm = lifecycle.raise_alarm(
        source="yealink", dedup_key="d1", title="Emergency", device=device, actor=SYSTEM
    ).alarm
    engine.run_due_step(alarm.pk)
    issue_ack_link(alarm, alice)
    ReplyCode.objects.create(address=alice.phone, number=1, alarm=alarm, person=alice)
    Reply.objects.create(method="sms", sender=alice.phone, text="1c 10", person=alice, alarm=alarm)
    lifecycle.raise_alarm(source="api", dedup_key="d2", title="Drill", actor=SYSTEM)
    panel, _ = make_device("Intrusion panel", kind=Device.Kind.SIA_PANEL, sia_account="1234")
    PanelZone.objects.create(panel=panel, zone="12", room=room, name="Back door")
    PanelEventCode.objects.create(code="QQ", title="Cold store open", severity="warning")
    cap, _ = make_device("Warnings", kind=Device.Kind.CAP, room=None)
    CapFeed.objects.create(name="National warnings", device=cap, url="https://warn.example/feed")
    ups, _ = make_device("UPS", kind=Device.Kind.EMAIL, room=None)
    address = InboundAddress.objects.create(device=ups, local_part="ups")
    InboundMail.objects.create(address=address, recipient="ups@alarms.localhost", raw=b"x")
    return alarm


@pytest.mark.parametrize(
    "model", list(admin.site._registry), ids=lambda m: f"{m._meta.app_label}.{m.__name__}"
)
def test_every_admin_changelist_renders(admin_client, some_of_everything, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")

    response = admin_client.get(url)

    assert response.status_code == 200
    if model._meta.app_label in OUR_APPS:
        assert response.context["cl"].result_count >= 1


def test_the_alarm_admin_page_shows_the_timeline_and_deliveries(admin_client, some_of_everything):
    url = reverse("admin:alarms_alarm_change", args=[some_of_everything.pk])

    page = admin_client.get(url).content.decode()

    assert "Emergency" in page
    assert "step_notified" in page or "Step 1 of 2" in page
    assert "alice@example.org" in page
