"""Our alarms as OASIS CAP 1.2 messages, POSTed to a receiver: the first notification is an
`Alert`, a later step and an acknowledge are `Update`s, a resolve or cancel is a `Cancel`, each
referencing the first. Every message is checked against the CAP 1.2 schema before it leaves and
signed with an enveloped XML Signature (CAP 1.2 section 3.3.2.1) by the channel's key and
certificate."""

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ValidationError
from lxml import etree
from signxml import CanonicalizationMethod, SignatureMethod, XMLSigner

from core import cap_xml

from .base import (
    ACKNOWLEDGED,
    CLOSING,
    FOLLOW_UPS,
    NOTIFY,
    TEST,
    Field,
    Sent,
    Transport,
    TransportError,
    answered,
    http,
)

CONTENT_TYPE = "application/cap+xml"
SEVERITY = {"critical": "Extreme", "high": "Severe", "warning": "Moderate", "info": "Minor"}
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport",
              "Infra", "CBRNE", "Other")  # fmt: skip
PEM_FIELDS = ("key_pem", "cert_pem")
# XML 1.0 cannot carry these (alarm text from JSON sources can): they are dropped.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def cap_time(when: datetime) -> str:
    """CAP's dateTime: seconds and a numeric offset, never "Z" (the schema's pattern)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def xml_text(value) -> str:
    return NOT_XML.sub("", str(value or ""))


def default_sender() -> str:
    return f"alarm-broker@{urlsplit(settings.PUBLIC_BASE_URL).hostname or 'localhost'}"


class CapTransport(Transport):
    label = "CAP 1.2 alerts (signed XML)"
    follows_up = FOLLOW_UPS
    ordered = True  # the Alert before its Updates, the Cancel last
    test_resolves = True  # a receiver keeps a test Alert active until its Cancel
    ack_link = False
    config_fields = (
        Field("url", "url", required=True, help="Where the CAP messages are POSTed."),
        Field("key_pem", "pem", required=True, secret=True,
              help="The signing key (PEM, RSA or EC, unencrypted)."),
        Field("cert_pem", "pem", required=True, secret=True,
              help="Its X.509 certificate (PEM), sent in the signature's KeyInfo."),
        Field("sender", help="CAP <sender>; default alarm-broker@<PUBLIC_BASE_URL's host>."),
        Field("category", "choice", default="Safety", choices=CATEGORIES),
        Field("scope", "choice", default="Restricted", choices=("Public", "Restricted")),
        Field("restriction", default="Internal alarm: not for public distribution.",
              help="CAP <restriction>, for the Restricted scope."),
        Field("headers", "dict", default={}, secret=True, help="Extra request headers."),
    )  # fmt: skip

    @classmethod
    def clean_config(cls, config) -> dict:
        """As every channel's, but a PEM's line breaks are its own: the keys are checked by
        loading them, and must belong together."""
        if not isinstance(config, dict):
            raise ValidationError("The config must be a JSON object.")
        pems = {name: config.get(name) for name in PEM_FIELDS}
        cleaned = super().clean_config(
            {**{k: v for k, v in config.items() if k not in PEM_FIELDS},
             **{name: "-" for name, value in pems.items() if value}}  # present, checked below
        )  # fmt: skip
        cleaned.update({name: value for name, value in pems.items() if value})
        signing_pair(cleaned)
        return cleaned

    def send(self, out):
        about = out.message.payload["event_id"].split(":")[0]  # the alarm, and its cycle
        alert_ref = out.ref.get("cap_alert") if out.ref.get("cap_about") == about else None
        status = "Test" if out.event == TEST else out.ref.get("cap_status", "Actual")
        if out.event in CLOSING and not alert_ref:
            return Sent(status="not sent", response="no CAP Alert of this alarm to cancel")
        msg_type = "Cancel" if out.event in CLOSING else "Update" if alert_ref else "Alert"
        sender = self.config.get("sender") or default_sender()
        # The same identifier on every attempt: a receiver takes a retry as a repeat.
        identifier = out.message.payload["event_id"]
        sent = cap_time(datetime.now(UTC))
        document = self.signed(
            alert_document(out, sender, identifier, sent, status, msg_type, alert_ref, self.config)
        )
        headers = {**self.config.get("headers", {}), "Content-Type": CONTENT_TYPE,
                   "User-Agent": "alarm-broker"}  # fmt: skip
        response = http("POST", self.config["url"], data=document, headers=headers)
        ref = None
        if msg_type == "Alert":
            ref = {"cap_alert": f"{sender},{identifier},{sent}", "cap_about": about,
                   "cap_status": status}  # fmt: skip
        return answered(response, identifier, ref)

    def signed(self, alert: etree._Element) -> bytes:
        """The alert signed (enveloped, exclusive c14n, SHA-256) and checked against the
        schema as it will be sent."""
        key, cert = signing_pair(self.config)
        signer = XMLSigner(
            signature_algorithm=SignatureMethod.ECDSA_SHA256
            if isinstance(key, ec.EllipticCurvePrivateKey) else SignatureMethod.RSA_SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )  # fmt: skip
        signature = signer.sign(alert, key=key, cert=[cert])
        body = etree.tostring(signature, xml_declaration=True, encoding="UTF-8")
        try:
            cap_xml.checked_alert(cap_xml.parsed(body, len(body)))
        except cap_xml.CapXmlError as exc:
            raise TransportError(f"not a valid CAP 1.2 alert: {exc}", permanent=True) from None
        return body


def signing_pair(config: dict) -> tuple:
    """The channel's private key and certificate, loaded; ValidationError when they do not
    load or do not belong together."""
    try:
        key = serialization.load_pem_private_key(config["key_pem"].encode(), password=None)
        cert = x509.load_pem_x509_certificate(config["cert_pem"].encode())
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationError(f"'key_pem' and 'cert_pem' must be PEM: {exc}") from None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValidationError("'cert_pem' is not the certificate of 'key_pem'.")
    return key, cert


def alert_document(out, sender, identifier, sent, status, msg_type, alert_ref, config):
    """The unsigned <alert> for one lifecycle change of the alarm."""
    alarm, facts = out.alarm, out.message.payload["alarm"]
    cap = f"{{{cap_xml.NAMESPACE}}}"
    root = etree.Element(f"{cap}alert", nsmap={None: cap_xml.NAMESPACE})

    def add(parent, name, value):
        child = etree.SubElement(parent, f"{cap}{name}")
        child.text = xml_text(value)
        return child

    for name, value in (("identifier", identifier), ("sender", sender), ("sent", sent),
                        ("status", status), ("msgType", msg_type), ("source", "alarm broker"),
                        ("scope", config.get("scope", "Restricted"))):  # fmt: skip
        add(root, name, value)
    if config.get("scope", "Restricted") == "Restricted":
        add(root, "restriction", config.get("restriction") or "Internal alarm.")
    if note := _note(out.event, facts):
        add(root, "note", note)
    if alert_ref:
        add(root, "references", alert_ref)
    info = etree.SubElement(root, f"{cap}info")
    add(info, "category", config.get("category", "Safety"))
    add(info, "event", alarm.title)
    add(info, "urgency", "Past" if out.event in CLOSING else "Immediate")
    add(info, "severity", SEVERITY.get(alarm.severity, "Unknown"))
    add(info, "certainty", "Observed")
    add(info, "senderName", settings.PUBLIC_BASE_URL)
    add(info, "headline", alarm.title[:160])
    add(info, "description", alarm.message or alarm.title)
    add(info, "web", facts["url"])
    for name, value in (("alarmId", facts["id"]), ("alarmStatus", facts["status"]),
                        ("alarmSource", facts["source"])):  # fmt: skip
        parameter = etree.SubElement(info, f"{cap}parameter")
        add(parameter, "valueName", name)
        add(parameter, "value", value)
    if facts["location"]:
        area = etree.SubElement(info, f"{cap}area")
        add(area, "areaDesc", facts["location"])
    return root


def _note(event: str, facts: dict) -> str:
    if event == ACKNOWLEDGED:
        return f"Acknowledged by {facts['acknowledged_by'] or 'someone'}"
    if event in CLOSING:
        return f"{event.capitalize()} by {facts['resolved_by'] or 'someone'}"
    if event == NOTIFY and facts["occurrences"] > 1:
        return f"Occurred {facts['occurrences']} times"
    return ""
