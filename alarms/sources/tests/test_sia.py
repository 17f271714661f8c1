"""Alarm panels on the SIA DC-09 wire: a panel of our own (alarms/drills/dc09_panel.py, framed
from the standard alone) sends SIA DCS, Contact ID and NULL messages, plain and encrypted, over
TCP and UDP to a real receiver, which must store before it ACKs and answer everything else with
the NAK or DUH the standard asks for, byte for byte."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alarms.drills.dc09_panel import Dc09Panel, Link, crc16, framed
from alarms.ingest.sia_receiver import Receiver
from alarms.models import Alarm
from alarms.sources import heartbeats
from conftest import free_port, wait_until
from devices.models import Device, PanelEventCode, PanelZone, Room

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = {"AES-128": "0123456789ABCDEF", "AES-192": "0123456789ABCDEF01234567",
        "AES-256": "0123456789ABCDEF0123456789ABCDEF"}  # fmt: skip


@pytest.fixture
def receiver():
    running = Receiver("127.0.0.1", 0)
    stop = threading.Event()
    thread = threading.Thread(target=running.serve, args=(stop,), daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(10)


@pytest.fixture
def make_panel(db, site, room):
    """make_panel(account, key="", **fields) -> the panel Device; its zone 12 is the back door
    of the reception, zone 15 the store room's motion detector."""

    def make(account="1234", key="", **fields):
        panel = Device.objects.create(name=f"Panel {account}", kind=Device.Kind.SIA_PANEL,
                                      site=site, sia_account=account, sia_key=key,
                                      rate_limit_per_minute=1000, **fields)  # fmt: skip
        store, _ = Room.objects.get_or_create(site=site, name="Store room")
        PanelZone.objects.create(panel=panel, zone="12", room=room, name="Back door contact")
        PanelZone.objects.create(panel=panel, zone="015", room=store, name="Motion detector")
        return panel

    return make


def link(receiver, udp=False) -> Link:
    return Link("127.0.0.1", receiver.port, udp=udp)


def test_a_burglary_is_stored_then_acked_byte_for_byte(receiver, make_panel, room):
    make_panel("1234")
    panel = Dc09Panel("1234", receiver="R1", line="L1")

    answer = link(receiver).send(panel.sia("BA", "12"))

    assert answer == b'\nD2770014"ACK"0001R1L1#1234[]\r'
    alarm = Alarm.objects.get()
    assert (alarm.source, alarm.title, alarm.severity, alarm.room) == (
        "sia", "Burglary alarm: Back door contact, Reception", "critical", room)  # fmt: skip
    assert alarm.labels == {"panel": "Panel 1234", "account": "1234", "code": "BA",
                            "protocol": "SIA-DCS", "zone": "12", "partition": "1"}  # fmt: skip
    assert alarm.details["sia"]["type"] == "Burglary Alarm"


def test_a_repeat_is_an_occurrence_a_restore_clears_and_a_new_alarm_reaches_a_human(
    receiver, make_panel
):
    make_panel("1234")
    panel, wire = Dc09Panel("1234"), link(receiver)

    kinds = [panel.read(wire.send(message)).kind for message in (
        panel.sia("BA", "12"), panel.sia("BA", "12"), panel.sia("BR", "12"))]  # fmt: skip

    assert kinds == ["ACK", "ACK", "ACK"]
    alarm = Alarm.objects.get()
    assert (alarm.occurrences, alarm.status) == (2, "resolved")
    assert panel.read(wire.send(panel.sia("BA", "12"))).kind == "ACK"
    alarm.refresh_from_db()
    assert (alarm.status, alarm.reopen_count) == ("triggered", 1)


@pytest.mark.parametrize("strength", list(KEYS))
def test_an_encrypted_contact_id_event_over_udp(receiver, make_panel, strength):
    make_panel("5AB9", key=KEYS[strength])
    panel, wire = Dc09Panel("5AB9", key=KEYS[strength], receiver="R2", line="L3"), None
    wire = link(receiver, udp=True)

    answer = panel.read(wire.send(panel.contact_id(1, 130, 1, 15)))

    assert (answer.kind, answer.encrypted, answer.sequence) == ("ACK", True, "0001")
    assert (answer.receiver, answer.line, answer.account, answer.data) == ("R2", "L3", "5AB9", "")
    sent_at = datetime.strptime(answer.time, "_%H:%M:%S,%m-%d-%Y").replace(tzinfo=UTC)
    assert abs(sent_at - datetime.now(UTC)) < timedelta(seconds=5)
    alarm = Alarm.objects.get()
    assert alarm.title == "Burglary alarm: Motion detector, Store room"
    assert alarm.details["sia"]["contact_id"] == "1130" and alarm.labels["zone"] == "15"
    assert panel.read(wire.send(panel.contact_id(3, 130, 1, 15))).kind == "ACK"  # restore
    alarm.refresh_from_db()
    assert alarm.status == "resolved"


def test_fire_and_panic_are_critical_and_tamper_and_power_name_their_trouble(receiver, make_panel):
    make_panel("1234")
    panel, wire = Dc09Panel("1234"), link(receiver)

    for message in (panel.contact_id(1, 110, 1, 3), panel.contact_id(1, 120, 1, 12),
                    panel.sia("TA", "7"), panel.contact_id(1, 301, 0, 0)):  # fmt: skip
        assert panel.read(wire.send(message)).kind == "ACK"

    found = {alarm.title: alarm.severity for alarm in Alarm.objects.all()}
    assert found == {
        "Fire alarm: zone 3": "critical", "Panic alarm: Back door contact, Reception": "critical",
        "Tamper alarm: zone 7": "high", "Mains power lost: zone 0": "warning",
    }  # fmt: skip


def test_null_messages_are_supervision_and_a_silent_panel_raises_panel_offline(
    receiver, make_panel
):
    panel_device = make_panel("1234", key=KEYS["AES-128"], heartbeat_interval_seconds=90)
    Device.objects.filter(pk=panel_device.pk).update(
        created_at=timezone.now() - timedelta(minutes=5))  # fmt: skip
    assert heartbeats.check() == 1
    offline = Alarm.objects.get()
    assert offline.title == "Panel offline: Panel 1234"
    panel = Dc09Panel("1234", key=KEYS["AES-128"])

    answer = panel.read(link(receiver).send(panel.null()))

    assert (answer.kind, answer.encrypted) == ("ACK", True)
    offline.refresh_from_db()
    assert offline.status == "resolved" and Alarm.objects.count() == 1
    assert heartbeats.check() == 0
    assert panel.read(link(receiver).send(Dc09Panel("1234").null())).kind == "NAK"  # in clear


def test_arming_and_test_reports_are_acked_without_an_alarm(receiver, make_panel):
    make_panel("1234")
    panel, wire = Dc09Panel("1234"), link(receiver)

    kinds = {panel.read(wire.send(panel.sia(code, "1"))).kind for code in ("OP", "CL", "RP")}

    assert kinds == {"ACK"} and not Alarm.objects.exists()


def nak_of(answer: bytes) -> bytes:
    """The NAK the standard frames for this answer's timestamp."""
    stamp = answer[-21:-1].decode()
    return framed(f'"NAK"0000R0L0A0[]{stamp}')


def test_bad_messages_are_naked_and_cost_nothing_already_accepted(receiver, make_panel):
    make_panel("1234")
    make_panel("ABCD", key=KEYS["AES-256"])
    panel, wire = Dc09Panel("1234"), link(receiver)
    assert panel.read(wire.send(panel.sia("FA", "3"))).kind == "ACK"
    good = panel.sia("BA", "12")
    body = good[9:-1].decode()
    old = datetime.now(UTC) - timedelta(minutes=2)

    bad = {
        "wrong CRC": b"\n0000" + good[5:],
        "wrong length": framed(body)[:5] + b"0099" + good[9:],
        "unknown account": Dc09Panel("9999").sia("BA", "1"),
        "encrypted for a plain account": Dc09Panel("1234", key=KEYS["AES-128"]).sia("BA", "1"),
        "plain for an encrypted account": Dc09Panel("ABCD").sia("BA", "1"),
        "the wrong key": Dc09Panel("ABCD", key=KEYS["AES-256"][::-1]).sia("BA", "1"),
        "a replay two minutes old": Dc09Panel("ABCD", key=KEYS["AES-256"]).sia("BA", "1", at=old),
        "line noise": b"\n\x00\xff\xfe garbage [[[ ]]] \x80\r",
        "a byte that is not ASCII": good.replace(b"BA12", b"BA1\xe9"),
        "no quotes": framed("SIA-DCS0001L0#1234[#1234|Nri1/BA12]"),
    }  # fmt: skip

    for why, message in bad.items():
        answer = wire.send(message)
        assert answer == nak_of(answer), why
        assert answer[9:-21] == b'"NAK"0000R0L0A0[]', why
    assert crc16(bad["wrong CRC"][9:-1].decode()) != "0000"
    too_long = link(receiver).send(panel.sia("BA", "1" * 1100))
    assert too_long == nak_of(too_long), "a frame longer than a message has"
    assert panel.read(wire.send(good)).kind == "ACK", "the connection still serves the panel"
    assert sorted(Alarm.objects.values_list("title", flat=True)) == [
        "Burglary alarm: Back door contact, Reception", "Fire alarm: zone 3"]  # fmt: skip


def test_a_message_of_a_kind_not_read_is_a_duh_byte_for_byte(receiver, make_panel):
    make_panel("1234")
    body = '"SIA-HKE"0002R1L1#1234[#1234|Nri1/BA12]'

    assert link(receiver).send(framed(body)) == b'\nA6AB0014"DUH"0002R1L1#1234[]\r'
    assert not Alarm.objects.exists()


def test_an_unknown_event_code_raises_until_operators_say_what_it_means(receiver, make_panel):
    make_panel("1234")
    panel, wire = Dc09Panel("1234"), link(receiver)

    assert panel.read(wire.send(panel.sia("QQ", "4"))).kind == "ACK"
    alarm = Alarm.objects.get()
    assert (alarm.title, alarm.severity) == ("Panel event QQ: zone 4", "high")
    PanelEventCode.objects.create(code="QQ", action="raise", title="Cold store door open",
                                  severity="warning", condition="cold-store")  # fmt: skip

    assert panel.read(wire.send(panel.sia("QQ", "5"))).kind == "ACK"
    assert Alarm.objects.get(labels__zone="5").title == "Cold store door open: zone 5"


def test_every_event_of_a_message_is_stored_before_its_ack(receiver, make_panel):
    make_panel("1234")
    panel = Dc09Panel("1234")
    message = panel.message("SIA-DCS", "#1234|Nri1/BA12/FA3/ri2/TA7")

    assert panel.read(link(receiver).send(message)).kind == "ACK"
    found = {(a.title, a.labels["partition"]) for a in Alarm.objects.all()}
    assert found == {("Burglary alarm: Back door contact, Reception", "1"),
                     ("Fire alarm: zone 3", "1"), ("Tamper alarm: zone 7", "2")}  # fmt: skip


def test_an_account_in_lower_case_is_the_panels(receiver, make_panel):
    make_panel("AB12", key=KEYS["AES-128"])
    panel = Dc09Panel("ab12", key=KEYS["AES-128"])
    old = datetime.now(UTC) - timedelta(minutes=2)

    assert panel.read(link(receiver).send(panel.sia("BA", "12"))).kind == "ACK"
    assert panel.read(link(receiver).send(panel.sia("BA", "12", at=old))).kind == "NAK"
    assert Alarm.objects.get().occurrences == 1


def test_udp_answers_one_message_a_datagram_and_nothing_to_noise(receiver, make_panel):
    make_panel("1234")
    panel, wire = Dc09Panel("1234"), link(receiver, udp=True)
    wire.sock.settimeout(1)

    wire.sock.send(b"x\r" * 500)
    wire.sock.send(b"\n" + b"0" * 3000 + b"\r")
    both = panel.sia("BA", "12") + panel.sia("FA", "3")
    answers = [panel.read(wire.send(both)).kind]
    with pytest.raises(TimeoutError):
        wire.receive()  # no second answer, and none to the noise before

    assert answers == ["ACK"]
    assert Alarm.objects.get().title == "Burglary alarm: Back door contact, Reception"


def test_several_messages_in_one_packet_and_one_split_over_two(receiver, make_panel):
    make_panel("1234")
    panel, wire = Dc09Panel("1234"), link(receiver)

    wire.sock.sendall(b"noise" + panel.sia("BA", "12") + panel.sia("FA", "3"))
    answers = [panel.read(wire.receive()).kind for _ in range(2)]
    split = panel.sia("PA", "12")
    wire.sock.sendall(split[:20])
    wire.sock.sendall(split[20:])

    assert answers + [panel.read(wire.receive()).kind] == ["ACK", "ACK", "ACK"]
    assert Alarm.objects.count() == 3


@pytest.mark.postgres
def test_an_event_the_database_refuses_is_naked_and_stored_when_sent_again(receiver, make_panel):
    make_panel("1234")
    panel, wire = Dc09Panel("1234"), link(receiver)
    with connection.cursor() as cursor:
        cursor.execute("""CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
                          $$ BEGIN RAISE EXCEPTION 'store refused'; END $$""")
        cursor.execute("CREATE TRIGGER refuse BEFORE INSERT ON alarms_alarm "
                       "FOR EACH ROW EXECUTE FUNCTION refuse()")  # fmt: skip
    message = panel.sia("BA", "12")

    try:
        refused = panel.read(wire.send(message)).kind
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse ON alarms_alarm; DROP FUNCTION refuse()")

    assert refused == "NAK" and not Alarm.objects.exists()
    assert panel.read(wire.send(message)).kind == "ACK"  # the panel's retry
    assert Alarm.objects.get().title == "Burglary alarm: Back door contact, Reception"


def test_the_listener_process_answers_on_tcp_and_udp(process_env, start_process, tmp_path,
                                                      make_panel):  # fmt: skip
    make_panel("1234")
    make_panel("ABCD", key=KEYS["AES-192"])
    port = free_port()
    start_process(["manage.py", "listen_sia", "--port", str(port)],
                  process_env(VAR_DIR=tmp_path), log_name="sia")  # fmt: skip
    wait_until(lambda: _listening(port), timeout=30)

    plain, encrypted = Dc09Panel("1234"), Dc09Panel("ABCD", key=KEYS["AES-192"])
    tcp = Link("127.0.0.1", port)
    udp = Link("127.0.0.1", port, udp=True)

    assert plain.read(tcp.send(plain.sia("BA", "12"))).kind == "ACK"
    assert encrypted.read(udp.send(encrypted.contact_id(1, 110, 1, 3))).kind == "ACK"
    assert sorted(Alarm.objects.values_list("title", flat=True)) == [
        "Burglary alarm: Back door contact, Reception", "Fire alarm: zone 3"]  # fmt: skip


def _listening(port: int) -> bool:
    try:
        Link("127.0.0.1", port, timeout=0.5).close()
        return True
    except OSError:
        return False
