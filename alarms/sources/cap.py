"""Public warnings in the OASIS Common Alerting Protocol 1.2, from a sender's POST or a feed: an
<alert> read safely and checked against the OASIS schema (core/cap_xml), and what it does to
our alarms. `Alert` raises, `Update` updates the alarm its references name, `Cancel` clears
it; `Ack`, `Error`, `Draft` and `System` messages change nothing. One alarm per original
alert (sender + identifier), per device; a repeated identifier changes nothing."""

import hashlib
from datetime import datetime
from xml.etree.ElementTree import Element

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from elementpath.datatypes import DateTime as XsdDateTime

from core import cap_xml
from core.cap_xml import NS
from devices.models import Device

from .. import lifecycle
from ..models import CapMessage
from ..timeline import Actor
from . import devices
from .refusal import Refused

SOURCE = "cap"
SEVERITY = {"Extreme": "critical", "Severe": "high", "Moderate": "warning", "Minor": "info",
            "Unknown": "warning"}  # fmt: skip
# What a message of each status is titled with; Draft and System messages raise nothing.
STATUS_PREFIX = {"Actual": "", "Exercise": "EXERCISE: ", "Test": "TEST: "}
ALERT_FIELDS = ("identifier", "sender", "sent", "status", "msgType", "source", "scope",
                "restriction", "addresses", "note", "references", "incidents")  # fmt: skip
INFO_FIELDS = ("language", "event", "audience", "effective", "onset", "expires", "senderName",
               "headline", "description", "instruction", "web", "contact",
               "urgency", "severity", "certainty")  # fmt: skip
NOT_VALID = "not a valid CAP 1.2 alert"
MAX_REFERENCES = 100  # read of one message; each is looked up


# --- reading -------------------------------------------------------------------------------


def checked(body) -> Element:
    """The <alert> of a request's body, safe and schema-valid; a refusal saying why not (413
    for a body too large, 400 naming the schema's path and reason)."""
    if not isinstance(body, bytes) or not body.strip():
        raise Refused(400, "a CAP 1.2 <alert> document is required")
    try:
        return cap_xml.checked_alert(cap_xml.parsed(body, settings.CAP_MAX_BYTES))
    except cap_xml.TooLarge as exc:
        raise Refused(413, exc.message) from None
    except cap_xml.CapXmlError as exc:
        raise Refused(400, exc.message, body=refusal_body(exc)) from None


def refusal_body(exc: cap_xml.CapXmlError) -> dict:
    body = {"error": NOT_VALID, "reason": exc.message}
    if exc.problems:
        body.update(path=exc.problems[0]["path"], reason=exc.problems[0]["reason"])
        body["problems"] = exc.problems
    return body


def _text(element: Element, name: str) -> str:
    found = element.find(f"cap:{name}", NS)
    return (found.text or "").strip() if found is not None else ""


def _texts(element: Element, name: str) -> list[str]:
    return [(found.text or "").strip() for found in element.findall(f"cap:{name}", NS)]


def _pairs(element: Element, name: str) -> list[dict]:
    return [{"valueName": _text(p, "valueName"), "value": _text(p, "value")}
            for p in element.findall(f"cap:{name}", NS)]  # fmt: skip


def read(alert: Element) -> dict:
    """A checked <alert> as plain data (resources without their embedded content)."""
    data = {name: _text(alert, name) for name in ALERT_FIELDS}
    data["code"] = _texts(alert, "code")
    data["infos"] = [_read_info(info) for info in alert.findall("cap:info", NS)]
    return data


def _read_info(info: Element) -> dict:
    data = {name: _text(info, name) for name in INFO_FIELDS}
    data["language"] = data["language"] or "en-US"  # the schema's default
    data["category"] = _texts(info, "category")
    data["responseType"] = _texts(info, "responseType")
    data["eventCode"] = _pairs(info, "eventCode")
    data["parameter"] = _pairs(info, "parameter")
    # derefUri (base64 content, often megabytes of audio) is left where it came from.
    data["resource"] = [{name: _text(r, name) for name in ("resourceDesc", "mimeType", "uri")}
                        for r in info.findall("cap:resource", NS)]  # fmt: skip
    data["area"] = [_read_area(area) for area in info.findall("cap:area", NS)]
    return data


def _read_area(area: Element) -> dict:
    found = {"areaDesc": _text(area, "areaDesc"), "polygon": _texts(area, "polygon"),
             "circle": _texts(area, "circle"), "geocode": _pairs(area, "geocode")}  # fmt: skip
    for name in ("altitude", "ceiling"):
        if value := _text(area, name):
            found[name] = value
    return found


def references(alert: dict) -> list[tuple[str, str, str]]:
    """The (sender, identifier, sent) triples of <references>, space-separated as CAP has it."""
    triples = []
    for item in alert["references"].split()[:MAX_REFERENCES]:
        parts = item.split(",")
        if len(parts) == 3:
            triples.append((parts[0], parts[1], parts[2]))
    return triples


# --- mapping -------------------------------------------------------------------------------


def chosen_info(alert: dict, language: str = "") -> dict | None:
    """The <info> shown: the one in `language` (CAP_LANGUAGE; "de" takes "de-DE"), else the
    first."""
    infos = alert["infos"]
    wanted = (language or settings.CAP_LANGUAGE).lower()
    for info in infos if wanted else ():
        have = info["language"].lower()
        if have == wanted or have.split("-")[0] == wanted:
            return info
    return infos[0] if infos else None


def severity_of(info: dict | None) -> str:
    """Our severity from CAP's severity and urgency: Severe and happening now is critical;
    what is already past is information."""
    if info is None:
        return "warning"
    if info["urgency"] == "Past":
        return "info"
    if info["severity"] == "Severe" and info["urgency"] == "Immediate":
        return "critical"
    return SEVERITY.get(info["severity"], "warning")


def expired(info: dict | None, now: datetime) -> bool:
    """Whether `expires` has passed, read as the schema's xs:dateTime (which has 24:00:00,
    midnight at the end of the day); a value it cannot read counts as not expired."""
    if not info or not info["expires"]:
        return False
    try:
        return XsdDateTime.fromstring(info["expires"]) <= XsdDateTime.fromdatetime(now)
    except ValueError:
        return False


def alarm_fields(alert: dict, info: dict | None) -> dict:
    """What the alarm says: title from headline or event, the text the public is given, labels
    for routing rules, and the whole of the chosen <info> and its areas in the details."""
    info = info or {}
    title = info.get("headline") or info.get("event") or f"CAP alert from {alert['sender']}"
    message = "\n\n".join(filter(None, [info.get("description"), info.get("instruction")]))
    labels = {
        "cap_sender": alert["sender"],
        "cap_status": alert["status"],
        "cap_event": info.get("event", ""),
        "cap_category": ",".join(info.get("category", [])),
        "cap_urgency": info.get("urgency", ""),
        "cap_severity": info.get("severity", ""),
        "cap_certainty": info.get("certainty", ""),
    }
    header = {name: alert[name] for name in ALERT_FIELDS if alert[name]}
    languages = [each["language"] for each in alert["infos"]]
    return {
        "title": (STATUS_PREFIX.get(alert["status"], "") + title)[:255],
        "message": message,
        "severity": "info" if alert["status"] == "Test" else severity_of(info or None),
        "labels": {key: value[:1000] for key, value in labels.items() if value},
        "details": {"cap": {**header, "code": alert["code"], "languages": languages, "info": info}},
    }


def dedup_key(device: Device, sender: str, identifier: str) -> str:
    """One alarm per original alert; hashed, as CAP identities are of any length."""
    digest = hashlib.sha256(f"{sender},{identifier}".encode()).hexdigest()[:32]
    return devices.scoped_dedup_key(device, f"cap:{digest}")


def referenced_keys(device: Device, triples: list[tuple]) -> list[str]:
    """The alarm keys of the referenced messages: the key of the original alert each one
    concerned when we had it (an update of an update finds the first alert), else its own."""
    if not triples:
        return []
    known = Q()
    for sender, identifier, _ in triples:
        known |= Q(sender=sender, identifier=identifier)
    stored = dict(
        ((m.sender, m.identifier), m.dedup_key)
        for m in CapMessage.objects.filter(known, device=device)
    )
    keys = [stored.get((s, i)) or dedup_key(device, s, i) for s, i, _ in triples]
    return list(dict.fromkeys(keys))


# --- applying ------------------------------------------------------------------------------


def receive(body, device: Device, by: Actor) -> dict:
    """A CAP document POSTed by a CAP device: checked before anything is stored."""
    alert = read(checked(body))
    devices.admit(device)
    return apply(alert, device, by)


def apply(alert: dict, device: Device, by: Actor) -> dict:
    """What one CAP message does, in one transaction: the message noted by its identity and
    the alarm it concerns raised, updated or cleared."""
    result = {"identifier": alert["identifier"], "sender": alert["sender"],
              "msgType": alert["msgType"], "status": alert["status"]}  # fmt: skip
    if alert["status"] not in STATUS_PREFIX:
        return {**result, "action": f"ignored: a {alert['status']} message", "alarm_ids": []}
    if alert["msgType"] in ("Ack", "Error"):
        return {**result, "action": f"ignored: an {alert['msgType']} message", "alarm_ids": []}
    if len(alert["sender"]) > 255 or len(alert["identifier"]) > 255:
        raise Refused(400, "sender and identifier are at most 255 characters each")
    with transaction.atomic():
        action, alarms = _apply(alert, device, by)
    return {**result, "action": action, "alarm_ids": [str(alarm.pk) for alarm in alarms]}


def _apply(alert: dict, device: Device, by: Actor) -> tuple[str, list]:
    triples = references(alert)
    keys = referenced_keys(device, triples)
    if alert["msgType"] == "Cancel":
        key = keys[0] if keys else dedup_key(device, alert["sender"], alert["identifier"])
    else:  # an Update keeps the alarm of the alert it updates (without references: its own)
        open_keys = [k for k in keys if lifecycle.open_alarm(k)]
        key = (open_keys or keys or [dedup_key(device, alert["sender"], alert["identifier"])])[0]
    message, created = CapMessage.objects.get_or_create(
        device=device, sender=alert["sender"], identifier=alert["identifier"],
        defaults={"sent": alert["sent"], "msg_type": alert["msgType"], "dedup_key": key},
    )  # fmt: skip
    if not created:
        return _repeat(alert, message.dedup_key)
    if alert["msgType"] == "Cancel":
        _remember_referenced(device, triples, None)
        return _cancel(alert, keys, by)
    if alert["msgType"] == "Update":
        _remember_referenced(device, triples, key)
    return _raise_or_update(alert, key, device, by)


def _remember_referenced(device: Device, triples: list[tuple], key: str | None) -> None:
    """The referenced messages we never had are noted, so one of them arriving late is a
    repeat that changes nothing (an Alert after its Cancel raises nothing). An update's belong
    to its alarm (`key`): a later message naming only one of them finds it; a cancel's keep
    their own."""
    CapMessage.objects.bulk_create(
        [CapMessage(device=device, sender=s[:255], identifier=i[:255], sent=t[:40],
                    msg_type="referenced", dedup_key=key or dedup_key(device, s, i))
         for s, i, t in triples],
        ignore_conflicts=True,
    )  # fmt: skip


def _raise_or_update(alert: dict, key: str, device: Device, by: Actor) -> tuple[str, list]:
    info = chosen_info(alert)
    outcome = lifecycle.report(
        source=SOURCE, dedup_key=key, device=device, actor=by, **alarm_fields(alert, info)
    )
    action = (
        "raised" if outcome.created else "reopened" if outcome.reopened
        else "updated" if outcome.changed else "unchanged"
    )  # fmt: skip
    if expired(info, timezone.now()):
        # Stored, so the warning is on record, but over: nobody is paged for it.
        lifecycle.clear(key, by, f"Expired at {info['expires']} when it was received")
        action += ", expired: resolved"
    return action, [outcome.alarm]


def _cancel(alert: dict, keys: list[str], by: Actor) -> tuple[str, list]:
    info = chosen_info(alert)
    why = alert["note"] or (info and (info["headline"] or info["description"])) or ""
    note = f"Cancelled by CAP message {alert['identifier']}" + (f": {why}" if why else "")
    outcomes = [outcome for key in keys if (outcome := lifecycle.clear(key, by, note[:2000]))]
    if not outcomes:
        return "nothing open to cancel", []
    return "cleared", [outcome.alarm for outcome in outcomes]


def _repeat(alert: dict, key: str) -> tuple[str, list]:
    """The same message again (a retry, a feed read twice): nothing changes, not even back to
    what it said if a later update changed the alarm since."""
    alarm = lifecycle.open_alarm(key)
    return "repeat: nothing changed", [alarm] if alarm and alert["msgType"] != "Cancel" else []
