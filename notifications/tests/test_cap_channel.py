"""The CAP channel, against a real receiver on loopback that does what a CAP receiver should:
it verifies the enveloped XML Signature with the sender's certificate (signxml) and checks the
message against the OASIS CAP 1.2 schema before it takes it. Raise, acknowledge and resolve
arrive as Alert, Update and Cancel, the later ones referencing the first."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from signxml import InvalidSignature, XMLVerifier

from alarms import lifecycle
from alarms.models import Alarm
from alarms.timeline import Actor
from core import cap_xml
from core.cap_xml import NS
from devices.models import Device
from notifications.delivery.sample_sends import send_test
from notifications.models import Delivery, NotificationChannel

from .fake_provider import Answer
from .steps import make_channel, send_pending
from .test_admin_secrets import ADD, FormFields, change_url, save_as_shown

pytestmark = pytest.mark.django_db

CAP_PATH = "/cap/inbound"


def signing_pair(key) -> tuple[str, str]:
    """A key and its self-signed certificate, as PEM."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alarms.example.org")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def rsa_pair():
    return signing_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def verified(body: bytes, cert_pem: str):
    """The message's signed <alert> (signxml raises if the signature does not hold), after the
    whole document passed the CAP 1.2 schema."""
    cap_xml.checked_alert(cap_xml.parsed(body, 10**6))
    return XMLVerifier().verify(body, x509_cert=cert_pem).signed_xml


@pytest.fixture
def receiver(provider, rsa_pair):
    """A CAP receiver trusting our certificate: 200 for a message it verified, else 400."""

    def receive(request, match):
        if request.headers.get("content-type") != "application/cap+xml":
            return Answer(415, {"error": "not CAP"})
        try:
            verified(request.body, rsa_pair[1])
        except (InvalidSignature, cap_xml.CapXmlError) as exc:
            return Answer(400, {"error": str(exc)})
        return Answer(200, b"taken")

    provider.route("POST", CAP_PATH, receive)
    return provider


@pytest.fixture
def channel(receiver, rsa_pair):
    key_pem, cert_pem = rsa_pair
    return make_channel("cap", "Regional CAP hub", url=receiver.url + CAP_PATH, key_pem=key_pem,
                        cert_pem=cert_pem, sender="alarms@hospital.example.org")  # fmt: skip


def field(alert, path: str) -> str:
    return alert.findtext(path, namespaces=NS)


def received(provider, cert_pem) -> list:
    return [verified(request.body, cert_pem) for request in provider.requests]


def test_raise_acknowledge_resolve_arrive_as_alert_update_cancel(
    receiver, channel, raise_alarm, rsa_pair
):
    alarm = raise_alarm(channels=[channel], severity="high", message="Smoke in the east wing.")
    send_pending(alarm)
    lifecycle.acknowledge(alarm.pk, Actor("Carol"))
    send_pending(alarm)
    lifecycle.resolve(alarm.pk, Actor("Dana"))
    send_pending(alarm)

    assert set(Delivery.objects.filter(alarm=alarm).values_list("status", flat=True)) == {"sent"}
    alert, update, cancel = received(receiver, rsa_pair[1])
    assert [field(m, "cap:msgType") for m in (alert, update, cancel)] == [
        "Alert", "Update", "Cancel"]  # fmt: skip
    first = ",".join(field(alert, f"cap:{name}") for name in ("sender", "identifier", "sent"))
    assert first.startswith(f"alarms@hospital.example.org,{alarm.pk}:notify:")
    assert field(alert, "cap:references") is None
    assert field(update, "cap:references") == field(cancel, "cap:references") == first
    assert field(alert, "cap:status") == "Actual"
    assert field(alert, "cap:scope") == "Restricted"
    assert field(alert, "cap:info/cap:severity") == "Severe"
    assert field(alert, "cap:info/cap:urgency") == "Immediate"
    assert field(alert, "cap:info/cap:headline") == "Emergency key pressed"
    assert field(alert, "cap:info/cap:description") == "Smoke in the east wing."
    assert field(update, "cap:note") == "Acknowledged by Carol"
    assert field(cancel, "cap:note") == "Resolved by Dana"
    assert field(cancel, "cap:info/cap:urgency") == "Past"


def test_our_messages_are_taken_by_our_own_cap_endpoint(
    receiver, channel, raise_alarm, rsa_pair, client, make_device
):
    """What the channel sends is CAP another broker reads: its Cancel clears the alarm its
    Alert raised there."""
    _, token = make_device("Hospital CAP feed", kind=Device.Kind.CAP, room=None)
    alarm = raise_alarm(channels=[channel])
    send_pending(alarm)
    lifecycle.cancel(alarm.pk, Actor("Dana"))
    send_pending(alarm)

    answers = [
        client.post("/v1/cap", request.body, content_type="application/cap+xml",
                    HTTP_AUTHORIZATION=f"Bearer {token}").json()
        for request in receiver.requests
    ]  # fmt: skip

    assert [a["action"] for a in answers] == ["raised", "cleared"]
    there = Alarm.objects.get(pk=answers[0]["alarm_ids"][0])
    assert there.source == "cap" and there.status == "resolved"
    assert there.title == alarm.title


def test_a_message_changed_after_signing_fails_verification(receiver, channel, raise_alarm,
                                                            rsa_pair):  # fmt: skip
    alarm = raise_alarm(channels=[channel])
    send_pending(alarm)
    (request,) = receiver.requests

    tampered = request.body.replace(b"Emergency key pressed", b"All clear, go home")

    with pytest.raises(InvalidSignature):
        verified(tampered, rsa_pair[1])


def test_a_test_message_is_a_test_alert_and_its_cancel(receiver, channel, rsa_pair):
    results = send_test(channel=channel)

    assert [ok for _, _, ok in results] == [True, True]
    alert, cancel = received(receiver, rsa_pair[1])
    assert [field(m, "cap:status") for m in (alert, cancel)] == ["Test", "Test"]
    assert field(cancel, "cap:msgType") == "Cancel"
    assert field(cancel, "cap:references").split(",")[1] == field(alert, "cap:identifier")


def test_an_elliptic_curve_key_signs_too(receiver, raise_alarm, provider):
    key_pem, cert_pem = signing_pair(ec.generate_private_key(ec.SECP256R1()))
    provider.routes.clear()
    provider.route("POST", CAP_PATH, lambda request, match: Answer(200, b"taken"))
    channel = make_channel("cap", url=provider.url + CAP_PATH, key_pem=key_pem, cert_pem=cert_pem)
    alarm = raise_alarm(channels=[channel])

    send_pending(alarm)

    (request,) = provider.requests
    assert field(verified(request.body, cert_pem), "cap:msgType") == "Alert"
    assert b"ecdsa-sha256" in request.body


def test_a_key_and_a_certificate_that_do_not_belong_together_are_refused(rsa_pair):
    other_key, _ = signing_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    with pytest.raises(ValidationError, match="not the certificate of 'key_pem'"):
        make_channel("cap", url="https://cap.example.org/in", key_pem=other_key,
                     cert_pem=rsa_pair[1])  # fmt: skip
    with pytest.raises(ValidationError, match="must be PEM"):
        make_channel("cap", url="https://cap.example.org/in", key_pem="not a key",
                     cert_pem=rsa_pair[1])  # fmt: skip
    with pytest.raises(ValidationError, match="'cert_pem' is required"):
        make_channel("cap", url="https://cap.example.org/in", key_pem=rsa_pair[0])


def test_the_key_is_kept_out_of_what_is_shown(channel, rsa_pair):
    shown = channel.shown_config()

    assert shown["key_pem"] == shown["cert_pem"] == "***"
    assert rsa_pair[0] in channel.transport().secrets()


def as_a_browser_sends(page: str, name: str, pasted: str) -> str:
    """What a browser submits for text pasted into the form's field `name`: a <textarea> keeps
    the line breaks (as CRLF), an <input> strips them (HTML's value sanitization)."""
    if re.search(rf'<textarea[^>]*name="{name}"', page):
        return pasted.replace("\n", "\r\n")
    return pasted.replace("\r", "").replace("\n", "")


def test_a_key_and_certificate_pasted_into_the_admin_sign_messages_that_verify(
    client, django_user_model, receiver, rsa_pair
):
    client.force_login(django_user_model.objects.create_superuser("op", "op@example.org", "pw"))
    key_pem, cert_pem = rsa_pair
    page = client.get(ADD).content.decode()
    fields = FormFields(page).fields
    fields.update(
        name="Regional CAP hub", kind="cap", config=json.dumps({"url": receiver.url + CAP_PATH}),
        secret_key_pem=as_a_browser_sends(page, "secret_key_pem", key_pem),
        secret_cert_pem=as_a_browser_sends(page, "secret_cert_pem", cert_pem),
    )  # fmt: skip

    response = client.post(ADD, fields)

    assert response.status_code == 302, response.content.decode()[-2000:]
    channel = NotificationChannel.objects.get(name="Regional CAP hub")
    pasted = (key_pem.strip(), cert_pem.strip())
    assert (channel.config["key_pem"], channel.config["cert_pem"]) == pasted
    assert save_as_shown(client, channel, name="CAP hub").status_code == 302  # left empty
    channel.refresh_from_db()
    assert (channel.name, channel.config["key_pem"], channel.config["cert_pem"]) == (
        "CAP hub", *pasted)  # fmt: skip
    shown = client.get(change_url(channel)).content.decode()
    assert key_pem.splitlines()[1] not in shown and cert_pem.splitlines()[1] not in shown
    assert [ok for _, _, ok in send_test(channel=channel)] == [True, True]
    alert, cancel = received(receiver, cert_pem)
    assert [field(m, "cap:msgType") for m in (alert, cancel)] == ["Alert", "Cancel"]
