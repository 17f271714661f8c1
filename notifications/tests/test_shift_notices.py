"""Shift notices through a real SMTP server: a reminder before a shift starts, a hand-off
message as it starts listing the team's open alarms, each sent once, a refused one tried
again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alarms import lifecycle
from alarms.timeline import SYSTEM
from escalation.models import EscalationPolicy
from notifications.delivery import shift_notices
from oncall.models import Override, ShiftNotice, Team
from oncall.tests.making import schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(alice, bob, make_device):
    team = Team.objects.create(name="Reception")
    policy = EscalationPolicy.objects.create(name="Desk", team=team)
    device, _ = make_device("Desk phone", default_policy=policy)
    lifecycle.raise_alarm(source="yealink", dedup_key="desk", title="Panic at the desk",
                          device=device, actor=SYSTEM)  # fmt: skip
    reception = schedule(dict(person=alice), name="Reception", team=team, reminder_minutes=60)
    starts = timezone.now().replace(microsecond=0) + timedelta(minutes=30)
    Override.objects.create(schedule=reception, kind="add", person=bob, starts_at=starts,
                            ends_at=starts + timedelta(hours=4))  # fmt: skip
    return reception, starts


def test_a_reminder_before_the_shift_and_a_hand_off_as_it_starts(desk, smtp_server, bob):
    reception, starts = desk
    assert shift_notices.send_due() == 1
    assert shift_notices.send_due() == 0  # told once
    [reminder] = smtp_server.bodies()
    assert "bob@example.org" in smtp_server.messages[0].rcpt_tos
    assert "Subject: Your on-call shift in Reception starts at" in reminder
    assert "You are on call in Reception from" in reminder
    assert shift_notices.send_due(starts + timedelta(minutes=1)) == 1
    handoff = smtp_server.bodies()[1]
    assert "Subject: You are on call in Reception: 1 alarm(s) open" in handoff
    assert "[critical] Panic at the desk (triggered since" in handoff
    assert "/board/" in handoff
    notices = ShiftNotice.objects.order_by("pk")
    assert [(n.kind, n.status, n.method) for n in notices] == [
        ("reminder", "sent", "email"), ("handoff", "sent", "email")]  # fmt: skip
    assert notices[0].answer.startswith("SMTP 250")


def test_a_refused_notice_is_tried_again(desk, smtp_server):
    smtp_server.reply = "451 4.3.0 Try again later"
    assert shift_notices.send_due() == 0
    notice = ShiftNotice.objects.get()
    assert (notice.status, notice.attempts) == ("failed", 1)
    assert "451" in notice.answer
    smtp_server.reply = None
    assert shift_notices.send_due() == 1
    assert ShiftNotice.objects.get().status == "sent"
    assert len(smtp_server.messages) == 1


def test_no_reminders_when_the_schedule_says_none(desk, smtp_server):
    reception, starts = desk
    reception.reminder_minutes = 0
    reception.handoff_message = False
    reception.save()
    assert shift_notices.send_due() == 0
    assert shift_notices.send_due(starts + timedelta(minutes=1)) == 0
    assert smtp_server.messages == []
