"""Public warnings in CAP 1.2 POSTed to /v1/cap with a CAP device's token: the OASIS
standard's Appendix A examples, Environment Canada's published update and two FEMA IPAWS
messages (fixtures/cap/),
through the HTTP API to the alarm, its updates, its cancel, and what is refused."""

import re
from pathlib import Path

import pytest

from alarms.models import Alarm
from devices.models import Device

from .payloads import integration

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures" / "cap"
HSAS = ("hsas@dhs.gov", "43b080713727", "2003-04-02T14:39:01-05:00")


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.xml").read_bytes()


def changed(document: bytes, **tags) -> bytes:
    """The document with these top-level elements' text replaced (references="" drops it)."""
    text = document.decode()
    for tag, value in tags.items():
        pattern = rf"<{tag}>.*?</{tag}>"
        if value is None or value == "":
            text = re.sub(rf"\s*{pattern}", "", text, count=1, flags=re.S)
        elif re.search(pattern, text, re.S):
            text = re.sub(pattern, f"<{tag}>{value}</{tag}>", text, count=1, flags=re.S)
        else:  # added after <scope>, where CAP puts it
            text = text.replace("</scope>", f"</scope>\n    <{tag}>{value}</{tag}>", 1)
    return text.encode()


def cancel_of(sender, identifier, sent, new_identifier="cancel-1") -> bytes:
    """A Cancel of that message, as its sender would word it (the HSAS alert's form)."""
    return changed(fixture("hsas_advisory"), identifier=new_identifier, sender=sender,
                   msgType="Cancel", references=f"{sender},{identifier},{sent}")  # fmt: skip


def deeply_nested(document: bytes, depth: int = 3000) -> bytes:
    """The document with signature elements nested `depth` deep, which the schema's lax
    xmldsig <any> lets through to its checker (3000: 70 kB, well under the size limit)."""
    ds = "<ds:Object xmlns:ds='http://www.w3.org/2000/09/xmldsig#'>"
    return document.replace(
        b"</alert>", (ds * depth + "</ds:Object>" * depth).encode() + b"</alert>"
    )


@pytest.fixture
def cap_token(make_device):
    return integration(make_device, Device.Kind.CAP)[1]


@pytest.fixture
def post_cap(client, cap_token):
    def post(body: bytes, content_type="application/cap+xml", token=None):
        return client.post("/v1/cap", body, content_type=content_type,
                           HTTP_AUTHORIZATION=f"Bearer {token or cap_token}")  # fmt: skip

    return post


def only_alarm() -> Alarm:
    (alarm,) = Alarm.objects.filter(source="cap")
    return alarm


# --- alerts ---------------------------------------------------------------------------------


def test_the_homeland_security_alert_raises_an_alarm_with_its_info_and_area(post_cap):
    response = post_cap(fixture("hsas_advisory"))

    assert response.status_code == 200
    body = response.json()
    assert (body["identifier"], body["msgType"], body["action"]) == (
        "43b080713727",
        "Alert",
        "raised",
    )
    alarm = only_alarm()
    assert str(alarm.pk) in body["alarm_ids"]
    assert alarm.title == "Homeland Security Sets Code ORANGE"
    assert alarm.severity == "critical"  # Severe and Immediate
    assert alarm.message.startswith("The Department of Homeland Security has elevated")
    assert "A High Condition is declared" in alarm.message  # the instruction follows
    assert alarm.labels == {
        "cap_sender": "hsas@dhs.gov", "cap_status": "Actual",
        "cap_event": "Homeland Security Advisory System Update", "cap_category": "Security",
        "cap_urgency": "Immediate", "cap_severity": "Severe", "cap_certainty": "Likely",
    }  # fmt: skip
    cap = alarm.details["cap"]
    assert (cap["identifier"], cap["sent"], cap["scope"]) == ("43b080713727", HSAS[2], "Public")
    assert cap["info"]["web"] == "http://www.dhs.gov/dhspublic/display?theme=29"
    assert cap["info"]["language"] == "en-US"  # the schema's default
    assert cap["info"]["parameter"] == [{"valueName": "HSAS", "value": "ORANGE"}]
    assert cap["info"]["area"] == [{"areaDesc": "U.S. nationwide and interests worldwide",
                                    "polygon": [], "circle": [], "geocode": []}]  # fmt: skip
    assert alarm.dedup_key.startswith(f"device:{alarm.device_id}:cap:")


def test_the_amber_alert_is_shown_in_the_configured_language(post_cap, settings):
    settings.CAP_LANGUAGE = "es"

    response = post_cap(fixture("amber_alert"), content_type="text/xml")

    assert response.status_code == 200
    alarm = only_alarm()
    assert alarm.title == "Alerta Amber en el condado de Los Ángeles"
    assert alarm.details["cap"]["languages"] == ["en-US", "es-US"]
    assert alarm.details["cap"]["info"]["area"][0]["geocode"] == [
        {"valueName": "SAME", "value": "006037"}]  # fmt: skip


def test_without_a_configured_language_the_first_info_is_shown(post_cap):
    post_cap(fixture("amber_alert"), content_type="application/xml")

    alarm = only_alarm()
    assert alarm.title == "Amber Alert in Los Angeles County"
    assert alarm.severity == "critical"
    assert alarm.details["cap"]["info"]["contact"].startswith("DET. SMITH")


def test_a_warning_that_expired_before_it_arrived_is_stored_resolved(post_cap):
    response = post_cap(fixture("severe_thunderstorm_warning"))

    assert response.json()["action"] == "raised, expired: resolved"
    alarm = only_alarm()
    assert alarm.status == "resolved"
    assert alarm.title == "SEVERE THUNDERSTORM WARNING"
    area = alarm.details["cap"]["info"]["area"][0]
    assert area["polygon"] == [
        "38.47,-120.14 38.34,-119.95 38.52,-119.74 38.62,-119.89 38.47,-120.14"
    ]
    assert [g["value"] for g in area["geocode"]] == ["006109", "006009", "006003"]
    assert alarm.events.filter(kind="resolved", text__startswith="Expired at 2003-06-17").exists()


@pytest.mark.parametrize(("expires", "action", "status"), [
    ("2030-01-01T24:00:00+00:00", "raised", "triggered"),  # midnight at the end of the day
    ("2003-06-17T24:00:00-07:00", "raised, expired: resolved", "resolved"),
])  # fmt: skip
def test_an_expiry_at_24_00_is_read_as_the_schema_reads_it(post_cap, expires, action, status):
    warning = fixture("severe_thunderstorm_warning").replace(
        b"2003-06-17T16:00:00-07:00", expires.encode()
    )

    response = post_cap(warning)

    assert response.status_code == 200
    assert response.json()["action"] == action
    assert only_alarm().status == status


def test_a_signed_ipaws_alert_with_an_embedded_image_is_taken_without_the_image(post_cap):
    """FEMA IPAWS as it distributes alerts: XML-DSig signed, a 20 kB JPEG inline (derefUri)."""
    response = post_cap(fixture("ipaws_local_area_emergency"))

    assert response.status_code == 200
    alarm = only_alarm()
    assert alarm.title == "Alert Montgomery - Police Searching for Suspicious Person"
    assert alarm.labels["cap_severity"] == "Extreme"
    (resource,) = alarm.details["cap"]["info"]["resource"]
    assert (resource["mimeType"], resource["uri"]) == ("image/jpeg", "")
    assert "derefUri" not in str(alarm.details)


def test_an_ipaws_cancel_without_info_of_an_alert_we_never_had_changes_nothing(post_cap):
    answer = post_cap(fixture("ipaws_cancel")).json()

    assert (answer["msgType"], answer["action"]) == ("Cancel", "nothing open to cancel")
    assert not Alarm.objects.exists()


def test_exercise_and_test_messages_are_labelled_as_such(post_cap):
    post_cap(changed(fixture("hsas_advisory"), status="Exercise"))
    post_cap(changed(fixture("amber_alert"), status="Test"))

    exercise = Alarm.objects.get(labels__cap_status="Exercise")
    assert exercise.title == "EXERCISE: Homeland Security Sets Code ORANGE"
    assert exercise.severity == "critical"  # practised as if real
    test = Alarm.objects.get(labels__cap_status="Test")
    assert test.title == "TEST: Amber Alert in Los Angeles County"
    assert test.severity == "info"  # "all recipients disregard"


def test_drafts_system_messages_acks_and_errors_change_nothing(post_cap):
    answers = [
        post_cap(changed(fixture("hsas_advisory"), status="Draft")).json(),
        post_cap(changed(fixture("hsas_advisory"), status="System")).json(),
        post_cap(
            changed(fixture("hsas_advisory"), msgType="Ack", references=" ".join(HSAS[:1]))
        ).json(),
        post_cap(changed(fixture("hsas_advisory"), msgType="Error")).json(),
    ]

    assert [a["action"] for a in answers] == [
        "ignored: a Draft message", "ignored: a System message", "ignored: an Ack message",
        "ignored: an Error message",
    ]  # fmt: skip
    assert not Alarm.objects.exists()


# --- updates, cancels, repeats ---------------------------------------------------------------


def earthquake_alert() -> bytes:
    """The earthquake report Appendix A.3 updates: its first version, as TriNet sent it."""
    return changed(fixture("earthquake_update"), identifier="TRI13970876.1", msgType="Alert",
                   sent="2003-06-11T20:30:00-07:00", references="",
                   description="A minor earthquake measuring 3.4 on the Richter scale occurred "
                   "near Brawley, California at 8:30 PM Pacific Daylight Time on Wednesday, "
                   "June 11, 2003.")  # fmt: skip


def test_the_earthquake_update_updates_the_alarm_its_references_name(post_cap):
    raised = post_cap(earthquake_alert()).json()
    updated = post_cap(fixture("earthquake_update")).json()

    assert raised["action"] == "raised"
    assert (updated["msgType"], updated["action"]) == ("Update", "updated")
    assert updated["alarm_ids"] == raised["alarm_ids"]
    alarm = only_alarm()
    assert "(This event has now been\n            reviewed by a seismologist)" in alarm.message
    assert alarm.details["cap"]["identifier"] == "TRI13970876.2"
    assert alarm.events.filter(kind="updated").exists()


def test_an_update_of_an_update_still_finds_the_first_alert(post_cap):
    first = post_cap(earthquake_alert()).json()
    post_cap(fixture("earthquake_update"))
    second = "trinet@caltech.edu,TRI13970876.2,2003-06-11T20:56:00-07:00"
    third = changed(fixture("earthquake_update"), identifier="TRI13970876.3",
                    sent="2003-06-11T21:10:00-07:00", headline="EQ 3.5 Imperial County CA",
                    references=second)  # fmt: skip

    answer = post_cap(third).json()

    assert answer["alarm_ids"] == first["alarm_ids"]
    assert only_alarm().title == "EQ 3.5 Imperial County CA"


def test_a_cancel_clears_the_alarm_it_references(post_cap):
    raised = post_cap(fixture("hsas_advisory")).json()

    answer = post_cap(cancel_of(*HSAS)).json()

    assert (answer["action"], answer["alarm_ids"]) == ("cleared", raised["alarm_ids"])
    alarm = only_alarm()
    assert alarm.status == "resolved"
    assert alarm.events.filter(text__startswith="Cancelled by CAP message cancel-1").exists()


def test_an_alert_arriving_after_its_cancel_is_a_repeat_that_raises_nothing(post_cap):
    cancelled = post_cap(cancel_of(*HSAS)).json()

    late = post_cap(fixture("hsas_advisory")).json()

    assert cancelled["action"] == "nothing open to cancel"
    assert (late["action"], late["alarm_ids"]) == ("repeat: nothing changed", [])
    assert not Alarm.objects.exists()


def test_a_cancel_of_nothing_we_have_changes_nothing(post_cap):
    answer = post_cap(cancel_of("hsas@dhs.gov", "never-sent", HSAS[2])).json()

    assert (answer["action"], answer["alarm_ids"]) == ("nothing open to cancel", [])
    assert not Alarm.objects.exists()


def test_a_repeated_alert_changes_nothing_and_never_reopens_a_cancelled_one(post_cap):
    first = post_cap(fixture("hsas_advisory")).json()
    again = post_cap(fixture("hsas_advisory")).json()

    assert (again["action"], again["alarm_ids"]) == ("repeat: nothing changed", first["alarm_ids"])
    assert only_alarm().occurrences == 1

    post_cap(cancel_of(*HSAS))
    late = post_cap(fixture("hsas_advisory")).json()

    assert (late["action"], late["alarm_ids"]) == ("repeat: nothing changed", [])
    assert only_alarm().status == "resolved"


def test_a_repeated_alert_does_not_undo_its_update(post_cap):
    post_cap(earthquake_alert())
    post_cap(fixture("earthquake_update"))

    post_cap(earthquake_alert())

    assert "reviewed by a seismologist" in only_alarm().message


def test_environment_canadas_update_of_alerts_we_never_had_is_one_alarm_any_reference_finds(
    post_cap,
):
    update = post_cap(fixture("environment_canada_update")).json()
    # A cancel that names only the second of the alerts the update referenced.
    cancel = post_cap(
        cancel_of("cap@ec.gc.ca", "2.49.0.1.124.60f31a3a.2012", "2012-05-02T21:55:21-00:00")
    ).json()

    assert update["action"] == "raised, expired: resolved"  # it expired in 2012
    alarm = only_alarm()
    assert alarm.title == "severe thunderstorm watch"
    assert alarm.severity == "info"  # urgency Past
    assert alarm.details["cap"]["references"].startswith("cap@ec.gc.ca,2.49.0.1.124.a3f342a4")
    assert alarm.details["cap"]["info"]["responseType"] == ["AllClear"]
    assert cancel["action"] == "nothing open to cancel"  # already resolved: found, not opened


def test_updates_and_cancels_are_per_device(post_cap, make_device):
    post_cap(fixture("hsas_advisory"))
    _, other = make_device("Another CAP sender", kind=Device.Kind.CAP, room=None)

    answer = post_cap(cancel_of(*HSAS), token=other).json()

    assert answer["action"] == "nothing open to cancel"
    assert only_alarm().status == "triggered"


# --- refusals --------------------------------------------------------------------------------


def test_a_schema_violation_is_refused_naming_it_and_the_raised_alarm_is_untouched(post_cap):
    post_cap(fixture("hsas_advisory"))
    invalid = changed(cancel_of(*HSAS), status="Canceled")

    response = post_cap(invalid)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "not a valid CAP 1.2 alert"
    assert body["path"] == "/alert/status"
    assert "value must be one of" in body["reason"] and "Actual" in body["reason"]
    alarm = only_alarm()
    assert (alarm.status, alarm.title) == ("triggered", "Homeland Security Sets Code ORANGE")
    assert not alarm.events.filter(kind="resolved").exists()


def test_a_missing_required_element_is_named(post_cap):
    response = post_cap(changed(fixture("amber_alert"), scope=None))

    assert response.status_code == 400
    assert response.json()["path"] == "/alert"
    assert "scope" in response.json()["reason"]
    assert not Alarm.objects.exists()


def test_a_cap_1_1_document_is_refused_as_not_cap_1_2(post_cap):
    old = fixture("hsas_advisory").replace(b"emergency:cap:1.2", b"emergency:cap:1.1")

    response = post_cap(old)

    assert response.status_code == 400
    assert "not a CAP 1.2 alert" in response.json()["reason"]


def test_elements_nested_too_deeply_for_the_schema_check_are_refused(post_cap):
    response = post_cap(deeply_nested(fixture("hsas_advisory")))

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "not a valid CAP 1.2 alert"
    assert body["reason"] == "nested too deeply to be checked against the schema"
    assert not Alarm.objects.exists()


def test_xml_that_is_not_well_formed_is_refused(post_cap):
    response = post_cap(fixture("hsas_advisory")[:-20])

    assert response.status_code == 400
    assert response.json()["reason"].startswith("not well-formed XML")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
""" + fixture("hsas_advisory").split(b"?>", 1)[1].replace(
    b"<headline>Homeland Security Sets Code ORANGE</headline>", b"<headline>&secret;</headline>"
)


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["bomb", "xxe"])
def test_dtds_and_entities_are_refused(post_cap, document):
    response = post_cap(document)

    assert response.status_code == 400
    assert response.json()["reason"].startswith("DTDs and entities are refused")
    assert "root:" not in response.content.decode()
    assert not Alarm.objects.exists()


def test_other_content_types_are_415(post_cap):
    response = post_cap(b'{"identifier": "x"}', content_type="application/json")

    assert response.status_code == 415
    assert "error" in response.json()


def test_a_document_over_the_limit_is_413(post_cap, settings):
    settings.CAP_MAX_BYTES = 1000

    response = post_cap(fixture("amber_alert"))  # 2.7 kB

    assert response.status_code == 413
    assert not Alarm.objects.exists()


def test_an_empty_body_is_refused(post_cap):
    assert post_cap(b"").status_code == 400


def test_only_a_cap_token_opens_the_endpoint_and_it_opens_nothing_else(
    post_cap, make_device, client, cap_token
):
    _, alertmanager = integration(make_device, Device.Kind.ALERTMANAGER)

    refused = post_cap(fixture("hsas_advisory"), token=alertmanager)
    elsewhere = client.post("/v1/alarms/raise", {"title": "x"}, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {cap_token}")  # fmt: skip

    assert refused.status_code == 403
    assert "CAP" in refused.json()["error"]
    assert elsewhere.status_code == 403
    assert not Alarm.objects.exists()
