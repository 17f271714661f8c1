"""Email in, on the wire: the real listener (`manage.py listen_mail`, a process of its own on
this test's database) spoken to with smtplib, device mails from fixtures/email/ (an APC UPS, a
Synology NAS, a building management system) and a malformed one; its refusals as SMTP codes;
the sweep that reads a mail stored but left unread."""

import email.policy
import os
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import regex
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from alarms import tasks
from alarms.models import (
    DEFAULT_RESOLVED_PATTERN,
    Alarm,
    AlarmEvent,
    InboundAddress,
    InboundMail,
    validate_pattern,
)
from alarms.sources import email_in
from alarmsite.celery import app
from conftest import ROOT, free_port, test_database_url, wait_until
from core import mail_reading
from devices.models import Device

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).parent / "fixtures" / "email"
DOMAIN = "alarms.localhost"
MAX_BYTES = 64 * 1024


def device_mail(name: str) -> bytes:
    """A fixture as it goes on the wire (CRLF line ends)."""
    return re.sub(rb"\r?\n", b"\r\n", (FIXTURES / name).read_bytes())


def start_listener(log_name: str, **env) -> tuple[subprocess.Popen, int]:
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1",
                   "MAIL_IN_DOMAINS": f"{DOMAIN},alarms.example.org",
                   "MAIL_IN_MAX_BYTES": str(MAX_BYTES), "LOG_FORMAT": "plain", **env}  # fmt: skip
    log = open(ROOT / "var" / f"{log_name}.log", "w")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "listen_mail", "--port", str(port)],
        cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    process.log = log
    wait_until(lambda: process.poll() is not None or _answers(port), timeout=30)
    assert process.poll() is None, (ROOT / "var" / f"{log_name}.log").read_text()
    return process, port


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(10)
    process.log.close()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(64).startswith(b"220")
    except OSError:
        return False


@pytest.fixture(scope="module")
def listener(django_db_setup):
    """The port of a listener process on the test database, for the module's tests."""
    process, port = start_listener("listen_mail")
    yield port
    stop(process)


@pytest.fixture
def inbox(make_device):
    """inbox(local_part, **fields): an email integration with this address."""

    def make(local_part: str, rate_limit_per_minute: int = 30, enabled=True, **fields):
        device, _ = make_device(
            f"{local_part} mail", kind=Device.Kind.EMAIL, room=None, enabled=enabled,
            rate_limit_per_minute=rate_limit_per_minute,
        )  # fmt: skip
        return InboundAddress.objects.create(device=device, local_part=local_part, **fields)

    return make


def with_subject(raw: bytes, subject: str) -> bytes:
    return re.sub(rb"(?m)^Subject: .*$", b"Subject: " + subject.encode(), raw, count=1)


def html_mail(subject: str, html: str) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = "panel@example.org", "x@x", subject
    message.set_content(html, subtype="html", cte="quoted-printable")
    return message.as_bytes()


def send(port: int, raw: bytes, to: str, sender: str = "device@example.org") -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
        return smtp.sendmail(sender, [to], raw)


def refusal_of_rcpt(port: int, to: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as smtp:
        smtp.ehlo()
        smtp.mail("device@example.org")
        return smtp.rcpt(to)


def test_an_apc_ups_on_battery_raises_an_alarm_and_power_restored_resolves_it(listener, inbox):
    # The card's two mails share "on battery": the key pattern makes them one alarm.
    ups = inbox("ups-basement", key_pattern=r"(?i)on battery")

    assert send(listener, device_mail("apc_on_battery.eml"), f"ups-basement@{DOMAIN}") == {}

    alarm = Alarm.objects.get()
    assert (alarm.source, alarm.status, alarm.severity, alarm.device) == (
        "email", "triggered", "high", ups.device)  # fmt: skip
    assert alarm.title == (
        "UPS-Basement: UPS: On battery power in response to an input power problem.")  # fmt: skip
    assert "Code : 0x0109" in alarm.message and "Location : Basement, room B012" in alarm.message
    assert alarm.dedup_key == f"device:{ups.device.pk}:email:on battery"
    assert alarm.details["from"] == "ups-basement@example.org"
    assert alarm.details["message_id"] == "<1710407565.0109@ups-basement.example.org>"
    assert alarm.details["date"] == "Thu, 14 Mar 2024 10:12:45 +0100"

    send(listener, device_mail("apc_power_restored.eml"), f"UPS-Basement@{DOMAIN}")

    alarm.refresh_from_db()
    assert alarm.status == "resolved" and alarm.occurrences == 1
    outcomes = list(InboundMail.objects.order_by("id").values_list("outcome", "alarm"))
    assert outcomes == [("raised", alarm.pk), ("resolved", alarm.pk)]
    resolved = alarm.events.get(kind=AlarmEvent.Kind.RESOLVED)
    assert resolved.text == "Resolved by mail: UPS-Basement: UPS: No longer on battery power."
    assert resolved.source_ip == "127.0.0.1"


def test_a_building_management_alarm_repeated_counts_an_occurrence_and_normal_clears(
    listener, inbox
):
    inbox("bms", severity="critical")
    high = device_mail("bms_supply_air_high.eml")

    send(listener, high, f"bms@{DOMAIN}")
    warmer = high.replace(
        b"(31.5 \xc2\xb0C) 18.03.2024 14:55", b"(32.1 \xc2\xb0C) 18.03.2024 15:00"
    )
    send(listener, warmer, f"bms@{DOMAIN}")

    alarm = Alarm.objects.get()
    assert alarm.occurrences == 2 and alarm.severity == "critical"
    assert alarm.title == "ALARM: AHU-3 Supply air temperature high (31.5 °C) 18.03.2024 14:55"
    assert alarm.message.startswith("Alarm class: A (urgent)\nObject: Building 2 / Plant room")
    assert "Value: 31.5 °C (high limit 28.0 °C)" in alarm.message  # ISO-8859-1, quoted-printable
    assert "<" not in alarm.message
    assert alarm.details["attachments"] == [
        {"filename": "AHU-3_trend.csv", "content_type": "text/csv", "bytes": 62}]  # fmt: skip
    assert InboundMail.objects.order_by("-id").first().outcome == "occurrence 2"

    send(listener, device_mail("bms_supply_air_normal.eml"), "bms@alarms.example.org")

    alarm.refresh_from_db()
    assert alarm.status == "resolved"


def test_an_html_only_nas_mail_becomes_plain_text(listener, inbox):
    inbox("nas-ds920")

    send(listener, device_mail("synology_storage_pool_degraded.eml"), f"nas-ds920@{DOMAIN}")

    alarm = Alarm.objects.get()
    assert alarm.title == "[DS920] Storage Pool 1 on DS920 has degraded – drive 2 failed"
    assert "Storage Pool 1 on DS920 has degraded [3/4 drives]. Drive 2 has failed." in alarm.message
    assert "Location: Server room <2nd floor>" in alarm.message  # an entity, as text
    assert "at risk — one more" in alarm.message
    for markup in ("<p>", "<b>", "font-family", "alert(", "<script"):
        assert markup not in alarm.message
    assert alarm.details["body"] == "HTML, as text"


def test_a_device_that_ends_its_lines_with_lf_alone_is_understood(listener, inbox):
    inbox("nas-ds920")
    raw = (FIXTURES / "synology_storage_pool_degraded.eml").read_bytes()
    assert len(raw) > 1000 and b"\r\n" not in raw  # one "line" longer than SMTP's

    with smtplib.SMTP("127.0.0.1", listener, timeout=15) as smtp:
        smtp.ehlo()
        smtp.mail("nas@example.org")
        smtp.rcpt(f"nas-ds920@{DOMAIN}")
        assert smtp.data(raw)[0] == 250

    assert Alarm.objects.get().title.startswith("[DS920] Storage Pool 1 on DS920 has degraded")


@pytest.mark.parametrize(
    "subject",
    [
        "Fire alarm: zone 4 - clear the building",
        "ALARM Temperature outside normal range",
        "Supply air temperature above normal",
        "Power failure: is back-up generator running?",
    ],
)
def test_an_alarm_with_an_all_clear_word_inside_its_subject_raises(listener, inbox, subject):
    inbox("bms")

    send(listener, with_subject(device_mail("bms_supply_air_high.eml"), subject), f"bms@{DOMAIN}")

    alarm = Alarm.objects.get()
    assert (alarm.title, alarm.status) == (subject, "triggered")
    assert InboundMail.objects.get().outcome == "raised"


def test_html_the_parser_gives_up_on_still_raises_with_its_subject(listener, inbox):
    inbox("panel")
    html = "<p>Zone 4: smoke detector</p><![ a"  # HTMLParser: AssertionError

    send(listener, html_mail("Zone 4 fire", html), f"panel@{DOMAIN}")

    alarm = Alarm.objects.get()
    assert alarm.title == "Zone 4 fire"
    assert "HTML body unreadable (AssertionError)" in alarm.details["problems"]


def test_html_left_open_is_read_at_once(listener, inbox):
    inbox("panel")
    html = "<p>Zone 4: smoke detector</p>" + "<a " * 15000  # took HTMLParser 15 s

    started = time.monotonic()
    send(listener, html_mail("Zone 4 fire", html), f"panel@{DOMAIN}")

    assert time.monotonic() - started < 5
    assert Alarm.objects.get().message == "Zone 4: smoke detector"


def test_html_beyond_64_kb_is_cut_and_said_so():
    html = "<p>Drive 2 failed</p>" + "<br>" * 250_000

    reading = mail_reading.read(html_mail("[DS920] Drive 2 failed", html))

    assert reading.text == "Drive 2 failed"
    assert "HTML body cut at 64 KB of 976 KB" in reading.problems


def test_a_pattern_that_backtracks_on_a_subject_counts_as_no_match(listener, inbox):
    slow = r"(a|aa)+$"  # exponential on a run of a's that does not end the subject
    inbox("bms", resolved_pattern=slow, key_pattern=slow)
    subject = "a" * 40 + "!"  # stdlib re: minutes, holding the GIL

    started = time.monotonic()
    send(listener, with_subject(device_mail("bms_supply_air_high.eml"), subject), f"bms@{DOMAIN}")

    assert time.monotonic() - started < 5
    alarm = Alarm.objects.get()
    assert (alarm.title, alarm.status) == (subject, "triggered")
    for what in ("resolved", "key"):
        said = f"the {what} pattern took over 0.5 s on the subject: taken as no match"
        assert said in alarm.details["problems"]
    assert "pattern '(a|aa)+$' took over 0.5 s" in (ROOT / "var" / "listen_mail.log").read_text()


def test_patterns_are_checked_by_the_engine_that_matches_them():
    validate_pattern(r"(?i)\p{Lu}+ OK$")  # regex's Unicode classes; re refuses them
    validate_pattern(DEFAULT_RESOLVED_PATTERN)
    with pytest.raises(ValidationError):
        validate_pattern("(")


def test_the_mail_sweep_is_not_on_the_recovery_queue():
    # Senders' mails must not hold up the sweeps that look after escalation and deliveries.
    route = app.amqp.router.route({}, "alarms.tasks.sweep_mail")
    assert route["queue"].name == "celery"


def test_an_unknown_address_or_a_disabled_integration_is_550_5_1_1(listener, inbox):
    inbox("old-panel", enabled=False)

    for to in (f"nobody@{DOMAIN}", f"old-panel@{DOMAIN}"):
        code, text = refusal_of_rcpt(listener, to)
        assert (code, text[:5]) == (550, b"5.1.1"), to
    assert not InboundMail.objects.exists()


def test_a_domain_not_configured_is_relaying_denied(listener, inbox):
    inbox("ups-basement")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(listener, device_mail("apc_on_battery.eml"), "ups-basement@example.com")

    assert refused.value.recipients["ups-basement@example.com"] == (
        550, b"5.7.1 relaying denied")  # fmt: skip
    assert not InboundMail.objects.exists()


def test_a_mail_over_the_size_limit_is_552_5_3_4_whether_announced_or_not(listener, inbox):
    inbox("bms")
    big = device_mail("bms_supply_air_high.eml") + b"x" * 70 + (b"\r\n" + b"y" * 70) * 1000

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE= announced by smtplib
        send(listener, big, f"bms@{DOMAIN}")
    assert refused.value.smtp_code == 552 and refused.value.smtp_error.startswith(b"5.3.4")

    with smtplib.SMTP("127.0.0.1", listener, timeout=15) as smtp:  # no SIZE: DATA runs over
        assert b"SIZE 65536" in smtp.ehlo()[1]
        smtp.mail("device@example.org")
        assert smtp.rcpt(f"bms@{DOMAIN}")[0] == 250
        code, text = smtp.data(big)
        assert (code, text[:5]) == (552, b"5.3.4")
        assert smtp.noop()[0] == 250  # the session goes on
    assert not InboundMail.objects.exists() and not Alarm.objects.exists()


def test_a_flood_over_the_integrations_rate_limit_is_told_to_try_again_later(listener, inbox):
    inbox("bms", rate_limit_per_minute=2)
    high = device_mail("bms_supply_air_high.eml")
    send(listener, high, f"bms@{DOMAIN}")
    send(listener, high, f"bms@{DOMAIN}")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(listener, high, f"bms@{DOMAIN}")

    code, text = refused.value.recipients[f"bms@{DOMAIN}"]
    assert (code, text[:5]) == (451, b"4.7.1")
    assert InboundMail.objects.count() == 2 and Alarm.objects.get().occurrences == 2


def test_a_malformed_mail_raises_an_alarm_with_what_could_be_read_and_costs_nothing(
    listener, inbox
):
    inbox("bms")
    send(listener, device_mail("bms_supply_air_high.eml"), f"bms@{DOMAIN}")

    send(listener, device_mail("malformed_panel.eml"), f"bms@{DOMAIN}")

    first, broken = Alarm.objects.order_by("created_at")
    assert (first.status, first.occurrences) == ("triggered", 1)
    assert broken.title.startswith("Zone 4 \ufffd\ufffd garbage")
    assert broken.message.startswith("Fire panel zone 4: smoke detector \ufffd\ufffd\ufffd head")
    assert "\x00" not in broken.message
    assert "StartBoundaryNotFoundDefect" in " ".join(broken.details["problems"])
    assert broken.details["date"] == "not a date at all"
    noted = broken.events.get(kind=AlarmEvent.Kind.UPDATED)
    assert noted.detail["made_storable"] == ["message"]
    send(listener, device_mail("bms_supply_air_normal.eml"), f"bms@{DOMAIN}")  # still listening
    first.refresh_from_db()
    assert first.status == "resolved"


def test_the_mail_is_stored_as_it_came_before_the_250(listener, inbox):
    nas = inbox("nas-ds920")
    raw = device_mail("synology_storage_pool_degraded.eml")

    send(listener, raw, f"nas-ds920@{DOMAIN}", sender="nas@example.org")

    mail = InboundMail.objects.get()
    assert bytes(mail.raw) == raw
    assert (mail.address, mail.recipient, mail.envelope_from, mail.peer) == (
        nas, f"nas-ds920@{DOMAIN}", "nas@example.org", "127.0.0.1")  # fmt: skip
    assert mail.processed_at is not None and mail.alarm == Alarm.objects.get()


def test_one_mail_to_two_integrations_is_stored_for_each_and_once_for_one(listener, inbox):
    inbox("bms")
    inbox("nas-ds920")
    to = [f"bms@{DOMAIN}", "BMS@alarms.example.org", f"nas-ds920@{DOMAIN}"]

    with smtplib.SMTP("127.0.0.1", listener, timeout=15) as smtp:
        smtp.sendmail("device@example.org", to, device_mail("bms_supply_air_high.eml"))

    assert sorted(InboundMail.objects.values_list("recipient", flat=True)) == [
        f"bms@{DOMAIN}", f"nas-ds920@{DOMAIN}"]  # fmt: skip
    assert sorted(Alarm.objects.values_list("device__name", "occurrences")) == [
        ("bms mail", 1), ("nas-ds920 mail", 1)]  # fmt: skip


def test_a_database_that_is_away_is_451_4_3_0(django_db_setup):
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/alarmbroker"
    process, port = start_listener("listen_mail_no_database", DATABASE_URL=dead)
    try:
        code, text = refusal_of_rcpt(port, f"ups-basement@{DOMAIN}")
    finally:
        stop(process)
    assert (code, text[:5]) == (451, b"4.3.0")


def stored_unread(inbox_, name: str, seconds_ago: float = 60) -> InboundMail:
    """A mail as the listener stores it, left unread (it died before reading it)."""
    mail = InboundMail.objects.create(
        address=inbox_, recipient=f"{inbox_.local_part}@{DOMAIN}", raw=device_mail(name)
    )
    received = timezone.now() - timedelta(seconds=seconds_ago)
    InboundMail.objects.filter(pk=mail.pk).update(received_at=received)
    return mail


def test_a_mail_stored_but_left_unread_is_read_by_the_sweep_once(inbox):
    bms = inbox("bms")
    mail = stored_unread(bms, "bms_supply_air_high.eml")
    just_now = stored_unread(bms, "bms_supply_air_normal.eml", seconds_ago=0)

    assert tasks.sweep_mail() == 1
    assert tasks.sweep_mail() == 0

    mail.refresh_from_db()
    assert mail.outcome == "raised" and mail.alarm == Alarm.objects.get()
    just_now.refresh_from_db()  # the listener is reading that one
    assert just_now.processed_at is None


def test_a_mail_no_rule_could_read_still_raises_an_alarm_saying_where_it_is(inbox):
    bms = inbox("bms")
    InboundAddress.objects.filter(pk=bms.pk).update(key_pattern="(")  # written past validation
    mail = stored_unread(bms, "bms_supply_air_high.eml")

    assert tasks.sweep_mail() == 1

    mail.refresh_from_db()
    assert mail.outcome == "raised as unreadable (see the log)"
    assert mail.alarm.title == f"A mail to bms@{DOMAIN} could not be read"
    assert mail.alarm.message == f"It is kept as inbound mail {mail.pk} (admin: Inbound mails)."


def test_the_admin_shows_a_mail_as_received_escaped(admin_client, inbox):
    mail = stored_unread(inbox("bms"), "malformed_panel.eml")
    InboundMail.objects.filter(pk=mail.pk).update(raw=b"Subject: <script>alert(1)</script>\r\n")

    page = admin_client.get(f"/admin/alarms/inboundmail/{mail.pk}/change/")

    assert page.status_code == 200
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in page.content
    assert b"<script>alert(1)" not in page.content
    assert admin_client.get("/admin/alarms/inboundaddress/").status_code == 200


@pytest.mark.postgres
def test_two_sweeps_at_once_read_a_mail_once(inbox):
    mail = stored_unread(inbox("bms"), "bms_supply_air_high.eml")
    results, start = [], threading.Barrier(2)

    def sweep():
        start.wait()
        results.append(email_in.process(mail.pk))
        connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sum(result is not None for result in results) == 1
    assert Alarm.objects.get().occurrences == 1


@pytest.mark.parametrize(
    ("alarm", "all_clear"),
    [
        ("ALARM: Zone 4 smoke detector", "Zone 4 smoke detector OK"),
        ("** PROBLEM Service Alert: web01/HTTP is CRITICAL **",
         "** RECOVERY Service Alert: web01/HTTP is OK **"),
        ("UPS on battery, 2024-03-14 10:12:45", "UPS no longer on battery (3 min)"),
        ("Fault: chiller 2 at 31.5 °C, Thu Mar 14 10:12", "Cleared: chiller 2 at 22 °C"),
        ("Chiller 2 fault", "Chiller 2 back to normal"),
        ("Server web01 down", "Server web01 is back online"),
    ],
)  # fmt: skip
def test_the_default_key_makes_an_alarm_and_its_all_clear_one(alarm, all_clear):
    address = InboundAddress(local_part="x")

    assert regex.search(address.resolved_pattern, all_clear)
    assert not regex.search(address.resolved_pattern, alarm)
    assert email_in.subject_key(address, alarm) == email_in.subject_key(address, all_clear)


def test_the_default_resolved_pattern_finds_all_clears_where_devices_put_them():
    all_clears = ["[RESOLVED] HighLatency web01", "Resolved in 5m 0s: High CPU on web01",
                  "[OK] CPU usage", "CLEAR: zone 4", "Return to normal: AHU-3",
                  "Checkmk: web01/CPU CRIT -> OK", "UPS: Power restored."]  # fmt: skip
    for subject in all_clears:
        assert regex.search(DEFAULT_RESOLVED_PATTERN, subject), subject


def test_the_default_key_keeps_which_disk_and_not_ok_is_no_all_clear():
    address = InboundAddress(local_part="x")

    assert email_in.subject_key(address, "Disk 2 failed") != email_in.subject_key(
        address, "Disk 3 failed"
    )
    for alarm in (
        "Power supply status: not OK",
        "Battery no longer OK",
        "Controller no longer responding",
        "Clear the building: fire in zone 4",
    ):
        assert not regex.search(address.resolved_pattern, alarm), alarm  # fmt: skip
