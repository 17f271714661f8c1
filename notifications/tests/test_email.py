"""Email against a real SMTP server (aiosmtpd on loopback): the bytes that arrive are parsed
and checked, and so is the Delivery row that audits them.

Deliveries are driven as in production: an alarm raised through `lifecycle.raise_alarm`, its
first step run by the engine, then `sending.attempt` called synchronously.
"""

import re
from email import message_from_bytes
from email import policy as email_policy

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.acklinks import find_ack_link
from alarms.timeline import SYSTEM
from conftest import free_port
from notifications import messages
from notifications.delivery import sending
from notifications.messages import REDACTED_LINK
from notifications.models import Delivery, NotificationChannel
from notifications.tests.steps import make_due
from notifications.tests.steps import send_only as send

pytestmark = pytest.mark.django_db

ACK_URL = re.compile(r"http://127\.0\.0\.1:8000/a/([A-Za-z0-9_\-]{20,})")
SUBJECT = "[CRITICAL] Emergency key pressed — Clinic North / Reception"


@pytest.fixture(autouse=True)
def _sender(settings):
    settings.DEFAULT_FROM_EMAIL = "alarms@clinic.example"
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture
def raise_alarm(make_policy, make_device):
    """Raise an alarm whose policy's one step emails these people and posts to these channels,
    and run that step; return the alarm."""
    count = 0

    def start(persons=(), channels=(), title="Emergency key pressed", **fields):
        nonlocal count
        count += 1
        policy = make_policy([(0, list(persons), list(channels))], name=f"Policy {count}")
        device, _ = make_device(f"Desk phone {count}", default_policy=policy)
        alarm = lifecycle.raise_alarm(
            source="yealink", dedup_key=f"desk-{count}", title=title, device=device,
            actor=SYSTEM, **fields,
        ).alarm  # fmt: skip
        assert engine.run_due_step(alarm.pk)
        return alarm

    return start


def received(envelope):
    return message_from_bytes(envelope.content, policy=email_policy.default)


def subject(mail) -> str:
    # Django folds a long encoded Subject onto the next line; the parser keeps that space.
    return str(mail["Subject"]).strip()


def text_of(part) -> str:
    return part.get_content().replace("\r\n", "\n")


def parts(message) -> dict[str, str]:
    """content type -> decoded text of each leaf part."""
    return {part.get_content_type(): text_of(part) for part in message.walk()
            if not part.is_multipart()}  # fmt: skip


def email_channel(name="Ops mailbox", **fields) -> NotificationChannel:
    channel = NotificationChannel(kind="email", name=name, **fields)
    channel.full_clean()
    channel.save()
    return channel


# --- what arrives -------------------------------------------------------------------------------


def test_a_person_gets_text_and_html_alternatives_both_with_their_ack_link(
    smtp_server, raise_alarm, alice
):
    alarm = raise_alarm([alice])

    send(alarm)

    (envelope,) = smtp_server.messages
    assert envelope.mail_from == "alarms@clinic.example"
    assert envelope.rcpt_tos == ["alice@example.org"]
    mail = received(envelope)
    assert mail["To"] == "alice@example.org"
    assert mail["From"] == "alarms@clinic.example"
    assert subject(mail) == SUBJECT
    assert mail["X-Alarm-Id"] == str(alarm.pk)
    assert mail.get_content_type() == "multipart/alternative"
    body = parts(mail)
    assert list(body) == ["text/plain", "text/html"]
    text_link = ACK_URL.search(body["text/plain"])
    assert text_link, "the plain text carries the ACK link"
    assert f'<a href="{text_link.group(0)}"' in body["text/html"], "the same link in HTML"
    link = find_ack_link(text_link.group(1))
    assert (link.alarm, link.person) == (alarm, alice), "the link is Alice's, for this alarm"
    assert "ALARM: Emergency key pressed" in body["text/plain"]
    assert "Room: Reception" in body["text/plain"]
    assert '<th align="left">Room</th><td>Reception</td>' in body["text/html"]


def test_the_delivery_records_the_smtp_reply_and_the_message_id(smtp_server, raise_alarm, alice):
    alarm = raise_alarm([alice])

    row = send(alarm)

    mail = received(smtp_server.messages[0])
    assert (row.status, row.attempts, row.provider_status) == ("sent", 1, "SMTP 250")
    assert row.provider_message_id == mail["Message-ID"]
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", row.provider_message_id)
    assert row.response == "OK"
    assert row.latency_ms is not None and row.latency_ms < 5000
    assert (row.person, row.channel, row.method, row.address) == (
        alice, None, "email", "alice@example.org",
    )  # fmt: skip
    assert row.error == "" and row.next_attempt_at is None and row.sent_at is not None
    assert alarm.events.get(kind="delivery_sent").text == (
        "Sent to Alice by email (alice@example.org): SMTP 250"
    )


def test_a_message_sent_again_carries_the_same_message_id_and_another_message_another(
    smtp_server, raise_alarm, alice, bob
):  # as when its sender died between the server's answer and its record
    alarm = raise_alarm([alice, bob])
    first, other = Delivery.objects.filter(alarm=alarm).order_by("person__name")
    sending.attempt(first.pk)
    Delivery.objects.filter(pk=first.pk).update(status="pending", next_attempt_at=timezone.now())

    sending.attempt(first.pk)
    sending.attempt(other.pk)

    ids = [received(envelope)["Message-ID"] for envelope in smtp_server.messages]
    assert ids[0] == ids[1] and ids[2] != ids[0]
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", ids[0])


def test_the_stored_copy_has_no_usable_ack_link_when_mail_leaves_the_machine(
    smtp_server, raise_alarm, alice
):
    alarm = raise_alarm([alice])

    row = send(alarm)

    token = ACK_URL.search(parts(received(smtp_server.messages[0]))["text/plain"]).group(1)
    assert row.message.startswith(f"Subject: {SUBJECT}\n\n")
    assert REDACTED_LINK in row.message
    assert token not in row.message


def test_html_part_escapes_hostile_alarm_text(smtp_server, raise_alarm, alice):
    alarm = raise_alarm(
        [alice], title="<script>alert(1)</script>", message='<img src=x onerror="alert(2)">'
    )

    send(alarm)

    html = parts(received(smtp_server.messages[0]))["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html
    assert "<script" not in html and "<img" not in html


def test_subject_and_text_part_carry_alarm_text_as_is(smtp_server, raise_alarm, alice):
    alarm = raise_alarm([alice], title='Fire "B" & <smoke>')

    send(alarm)

    mail = received(smtp_server.messages[0])
    assert subject(mail).startswith('[CRITICAL] Fire "B" & <smoke> — ')
    assert 'ALARM: Fire "B" & <smoke>\n' in parts(mail)["text/plain"]


def test_a_title_with_a_line_break_cannot_add_headers(smtp_server, raise_alarm, alice):
    alarm = raise_alarm([alice], title="Fire\r\nBcc: mallory@example.org")

    row = send(alarm)

    (envelope,) = smtp_server.messages
    assert envelope.rcpt_tos == ["alice@example.org"]
    mail = received(envelope)
    assert mail["Bcc"] is None
    assert subject(mail).startswith("[CRITICAL] Fire Bcc: mallory@example.org — ")
    assert row.status == "sent"


def test_an_email_channel_mails_its_own_addresses(smtp_server, raise_alarm):
    channel = email_channel(
        config={"to": "ops@example.org, desk@example.org", "from_email": "noc@clinic.example"}
    )
    alarm = raise_alarm(channels=[channel])

    row = send(alarm)

    (envelope,) = smtp_server.messages
    assert envelope.mail_from == "noc@clinic.example"
    assert envelope.rcpt_tos == ["ops@example.org", "desk@example.org"]
    mail = received(envelope)
    assert mail["To"] == "ops@example.org, desk@example.org"
    assert mail["From"] == "noc@clinic.example"
    token = ACK_URL.search(parts(mail)["text/plain"]).group(1)
    link = find_ack_link(token)
    assert (link.person, link.channel) == (None, channel), "a link for the channel's readers"
    assert (row.person, row.channel, row.method, row.target) == (
        None, channel, "email", f"channel:{channel.pk}",
    )  # fmt: skip
    assert row.address == "ops@example.org, desk@example.org"
    assert (row.status, row.provider_status) == ("sent", "SMTP 250")


def test_a_refused_recipient_among_several_does_not_stop_the_others(smtp_server, raise_alarm):
    async def handle_RCPT(server, session, envelope, address, options):  # noqa: N802
        if address == "gone@example.org":
            return "550 5.1.1 User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    smtp_server.handle_RCPT = handle_RCPT
    channel = email_channel(config={"to": "gone@example.org, desk@example.org"})
    alarm = raise_alarm(channels=[channel])

    row = send(alarm)

    assert smtp_server.messages[0].rcpt_tos == ["desk@example.org"]
    assert (row.status, row.provider_status) == ("sent", "SMTP 250")


def test_every_recipient_refused_is_permanent(smtp_server, raise_alarm, alice):
    async def handle_RCPT(server, session, envelope, address, options):  # noqa: N802
        return "550 5.1.1 User unknown"

    smtp_server.handle_RCPT = handle_RCPT
    alarm = raise_alarm([alice])

    row = send(alarm)

    assert smtp_server.messages == []
    assert (row.status, row.attempts, row.provider_status) == ("failed", 1, "SMTP 550")
    assert "User unknown" in row.error
    assert "delivery_failed" in alarm.events.values_list("kind", flat=True)


# --- failures -----------------------------------------------------------------------------------


def test_smtp_451_is_transient_and_the_retry_sends_it(smtp_server, raise_alarm, alice, settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 10
    smtp_server.reply = "451 4.3.0 Mailbox temporarily unavailable"
    alarm = raise_alarm([alice])

    row = send(alarm)

    assert (row.status, row.attempts, row.provider_status) == ("pending", 1, "SMTP 451")
    assert row.error == "SMTP 451: 4.3.0 Mailbox temporarily unavailable"
    assert 4 <= (row.next_attempt_at - timezone.now()).total_seconds() <= 10
    assert "delivery_failed" not in alarm.events.values_list("kind", flat=True)
    assert sending.attempt(row.pk) is None, "not due yet"

    smtp_server.reply = None
    make_due(row)
    assert sending.attempt(row.pk) == "sent"

    row.refresh_from_db()
    assert (row.status, row.attempts, row.provider_status, row.error) == (
        "sent", 2, "SMTP 250", "",
    )  # fmt: skip
    assert [m.rcpt_tos for m in smtp_server.messages] == [["alice@example.org"]]


def test_smtp_550_is_permanent(smtp_server, raise_alarm, alice):
    smtp_server.reply = "550 5.7.1 Message rejected as spam"
    alarm = raise_alarm([alice])

    row = send(alarm)

    assert (row.status, row.attempts, row.provider_status) == ("failed", 1, "SMTP 550")
    assert row.error == "SMTP 550: 5.7.1 Message rejected as spam"
    assert row.next_attempt_at is None
    failed = alarm.events.get(kind="delivery_failed")
    assert failed.text == (
        "Failed to reach Alice by email (step 1) after a permanent error: "
        "SMTP 550: 5.7.1 Message rejected as spam"
    )


def test_an_unreachable_mail_server_is_transient(smtp_server, raise_alarm, alice, settings):
    settings.EMAIL_PORT = free_port()  # nothing listens there
    alarm = raise_alarm([alice])

    row = send(alarm)

    assert (row.status, row.attempts) == ("pending", 1)
    assert row.error.startswith("ConnectionRefusedError")
    assert row.next_attempt_at > timezone.now()


# --- templates ----------------------------------------------------------------------------------


@pytest.fixture
def severity_templates(settings, tmp_path):
    """A template directory ahead of the shipped one with templates for `warning` alarms."""
    folder = tmp_path / "notifications" / "email"
    folder.mkdir(parents=True)
    (folder / "subject_warning.txt").write_text("Heads-up: {{ alarm.title }}")
    (folder / "body_warning.txt").write_text(
        "WARNING TEXT for {{ alarm.title }}\nAcknowledge: {{ ack_url }}\n"
    )
    (folder / "body_warning.html").write_text(
        '<p>WARNING HTML for {{ alarm.title }}</p><a href="{{ ack_url }}">Acknowledge</a>'
    )
    template_settings = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**template_settings, "DIRS": [tmp_path, *template_settings["DIRS"]]}]
    # The plain-text engine is built once per process from the template settings.
    messages._text_engine.cache_clear()
    yield
    messages._text_engine.cache_clear()


def test_a_severity_template_replaces_the_default_for_that_severity_only(
    smtp_server, raise_alarm, alice, severity_templates
):
    warning = raise_alarm([alice], title="Fridge warm", severity="warning")
    critical = raise_alarm([alice], title="Fire")

    send(warning)
    send(critical)

    warning_mail, critical_mail = (received(m) for m in smtp_server.messages)
    assert subject(warning_mail) == "Heads-up: Fridge warm"
    body = parts(warning_mail)
    assert body["text/plain"].startswith("WARNING TEXT for Fridge warm\nAcknowledge: http://")
    assert body["text/html"].startswith("<p>WARNING HTML for Fridge warm</p>")
    assert ACK_URL.search(body["text/html"])
    assert subject(critical_mail) == "[CRITICAL] Fire — Clinic North / Reception"
    assert "ALARM: Fire" in parts(critical_mail)["text/plain"]
    assert "WARNING" not in critical_mail.as_string()


def test_a_channels_own_templates_replace_the_shipped_ones(smtp_server, raise_alarm):
    channel = email_channel(
        config={"to": "desk@example.org"},
        subject_template="{{ alarm.severity|upper }} at {{ alarm.location }}",
        body_template="{{ alarm.title }} (step {{ step }})\nAck: {{ ack_url }}",
    )
    alarm = raise_alarm(channels=[channel])

    row = send(alarm)

    mail = received(smtp_server.messages[0])
    assert subject(mail) == "CRITICAL at Clinic North / Reception"
    assert mail.get_content_type() == "text/plain", "no shipped HTML beside an own body"
    text = text_of(mail)
    assert text.startswith("Emergency key pressed (step 1)\nAck: http://127.0.0.1:8000/a/")
    assert row.status == "sent"


@pytest.mark.parametrize(
    "field, source",
    [
        ("subject_template", "{% if %}Alarm{% endif %}"),
        ("body_template", "{{ alarm.title|no_such_filter }}"),
        ("body_template", "{% for x in alarm.labels %}unclosed"),
        ("body_template", "{% endif %}"),
    ],
)
def test_a_broken_channel_template_is_rejected(field, source):
    channel = NotificationChannel(
        kind="email", name="Ops", config={"to": "ops@example.org"}, **{field: source}
    )

    with pytest.raises(ValidationError) as caught:
        channel.full_clean()

    (error,) = caught.value.message_dict[field]
    assert error.startswith("Template error: ")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"to": "ops@example.org, not-an-address"}, "'to': 'not-an-address' is not an email"),
        ({"from_email": "noc"}, "'from_email': 'noc' is not an email address."),
        ({"cc": "x@example.org"}, "Unknown key(s): cc. Known: to, from_email."),
        ({"to": ["ops@example.org"]}, "'to' must be a string."),
    ],
)
def test_email_channel_config_is_validated(config, message):
    channel = NotificationChannel(kind="email", name="Ops", config=config)

    with pytest.raises(ValidationError) as caught:
        channel.full_clean()

    errors = caught.value.message_dict["config"]
    assert any(message in error for error in errors), errors
