"""Test alarms (drills) for the operators' go-live commands: raised through the same functions
as the real sources, marked as tests in title and labels, and closed again afterwards."""

import socket
import uuid

from django.db import transaction
from django.utils import timezone

from alarms import engine, lifecycle
from alarms.models import Alarm
from alarms.sources import alertmanager, devices, json_api, opsgenie, pagerduty
from alarms.sources.refusal import validated
from alarms.timeline import Actor
from devices.models import Device
from escalation.models import EscalationPolicy

TITLE_PREFIX = "[TEST] "
SOURCES = ("alertmanager", "pagerduty", "opsgenie", "generic")
INTEGRATION_OF_SOURCE = {
    "alertmanager": Device.Kind.ALERTMANAGER,
    "pagerduty": Device.Kind.PAGERDUTY,
    "opsgenie": Device.Kind.OPSGENIE,
}


class DrillRefused(Exception):
    """The test alarm cannot be raised as asked (unknown or disabled device, unmapped phone)."""


def new_run() -> str:
    """A short id that names one test run in dedup keys and labels."""
    return uuid.uuid4().hex[:8]


def drill_labels(run: str) -> dict:
    return {"test": "true", "test_run": run}


def command_actor(command: str) -> Actor:
    return Actor(f"manage.py {command}")


def find_device(name: str) -> Device:
    device = Device.objects.select_related("site", "room", "person").filter(name=name).first()
    if device is None:
        names = ", ".join(Device.objects.values_list("name", flat=True)[:20]) or "none"
        raise DrillRefused(f"no device named {name!r} (devices: {names})")
    if not device.enabled:
        raise DrillRefused(f"device {name!r} is disabled: its real alarms are refused too")
    return device


def integration_for(source: str) -> Device:
    """The one enabled integration device of this source's kind."""
    kind = INTEGRATION_OF_SOURCE[source]
    devices = list(Device.objects.filter(kind=kind, enabled=True).select_related("site"))
    if not devices:
        label = Device.Kind(kind).label
        raise DrillRefused(
            f"no enabled device of kind {label!r}: add one in the admin (Devices) first"
        )
    if len(devices) > 1:
        names = ", ".join(repr(device.name) for device in devices)
        raise DrillRefused(f"several {source} integrations ({names}): name one with --device")
    return devices[0]


def raise_as_device(device: Device, run: str, actor: Actor) -> Alarm:
    """Raise a test alarm as this device does: a phone's emergency key, a generic device's JSON
    raise, an integration's own payload. The device is not marked seen (a test must not hide a
    device that went offline) and its rate limit is not counted."""
    if device.kind == Device.Kind.ALERTMANAGER:
        return from_alertmanager(device, run, actor)
    if device.kind == Device.Kind.PAGERDUTY:
        return from_pagerduty(device, run, actor)
    if device.kind == Device.Kind.OPSGENIE:
        return from_opsgenie(device, run, actor)
    if device.kind == Device.Kind.METRICS:
        raise DrillRefused(
            "a metrics sender raises alarms only through metric rules: send it a sample that "
            "crosses one, or test with --source"
        )
    if device.kind == Device.Kind.YEALINK:
        if device.mapping_problem:
            raise DrillRefused(f"{device.name}: {device.mapping_problem}")
        return devices.press_emergency_key(
            device,
            actor,
            key=f"test-{run}",
            title_prefix=TITLE_PREFIX,
            message=f"Test of the emergency key on {device.name}.",
            labels=drill_labels(run),
        ).alarm
    return from_json_api(run, actor, device=device)


def raise_from_source(source: str, run: str, actor: Actor) -> Alarm:
    if source == "generic":
        return from_json_api(run, actor)
    return raise_as_device(integration_for(source), run, actor)


def from_json_api(run: str, actor: Actor, device: Device | None = None) -> Alarm:
    """As POST /v1/alarms/raise: the body validated as the source validates it, the key scoped
    per device token (or `api:` for a user)."""
    body = {
        "dedup_key": f"test-{run}",
        "title": f"{TITLE_PREFIX}Go-live test alarm" + (f" from {device.name}" if device else ""),
        "message": "Raised by a go-live test; it is resolved when the test ends.",
        "severity": "critical",
        "labels": drill_labels(run),
    }
    return json_api.raise_validated(validated(json_api.RaiseSerializer, body), device, actor).alarm


def alertmanager_payload(run: str) -> dict:
    """A webhook (version 4) as Alertmanager sends it, with one firing alert."""
    labels = {"alertname": "GoLiveTest", "severity": "critical", "instance": socket.gethostname(),
              **drill_labels(run)}  # fmt: skip
    return {
        "version": "4",
        "groupKey": '{}:{alertname="GoLiveTest"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "alarm-broker",
        "groupLabels": {"alertname": "GoLiveTest"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": f"{TITLE_PREFIX}Go-live test alert from Alertmanager",
                    "description": "Raised by a go-live test; it is resolved when the test ends.",
                },
                "startsAt": timezone.now().isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": uuid.uuid4().hex[:16],
            }
        ],
    }


def from_alertmanager(device: Device, run: str, actor: Actor) -> Alarm:
    """As POST /v1/integrations/alertmanager from this integration."""
    data = validated(alertmanager.AlertmanagerSerializer, alertmanager_payload(run))
    result = alertmanager.apply(device, actor, data["alerts"][0], data, sites={})
    return Alarm.objects.get(pk=result["alarm_id"])


def pagerduty_event(run: str) -> dict:
    """An Events API v2 trigger as a PagerDuty client sends it."""
    return {
        "routing_key": "(the integration's token: not needed in-process)",
        "event_action": "trigger",
        "dedup_key": f"test-{run}",
        "client": "manage.py firetestalarm",
        "payload": {
            "summary": f"{TITLE_PREFIX}Go-live test event from a PagerDuty Events client",
            "source": socket.gethostname(),
            "severity": "critical",
            "component": "alarm-broker",
            "group": "go-live",
            "class": "test",
            "custom_details": {"test": True, "test_run": run},
        },
    }


def from_pagerduty(device: Device, run: str, actor: Actor) -> Alarm:
    """As POST /v2/enqueue with this integration's routing key."""
    data = validated(pagerduty.EventSerializer, pagerduty_event(run))
    dedup_key = pagerduty.dedup_key(device, data["dedup_key"])
    return pagerduty.trigger(device, actor, dedup_key, data).alarm


def find_policy(name: str) -> EscalationPolicy:
    policy = EscalationPolicy.objects.filter(name=name).first()
    if policy is None:
        names = ", ".join(EscalationPolicy.objects.values_list("name", flat=True)[:20]) or "none"
        raise DrillRefused(f"no escalation policy named {name!r} (policies: {names})")
    return policy


def raise_for_policy(policy: EscalationPolicy, run: str, actor: Actor, delay_of) -> Alarm:
    """A test alarm that follows this policy (routing rules skipped; silences still apply),
    each delay of its copy of the policy replaced by `delay_of(seconds)`."""
    with transaction.atomic():
        outcome = lifecycle.raise_alarm(
            source="test",
            dedup_key=f"test:{run}",
            title=f"{TITLE_PREFIX}Escalation test of policy {policy.name}",
            message="Raised by an escalation test; it is cancelled when the test ends.",
            severity="critical",
            labels=drill_labels(run),
            policy=policy,
            actor=actor,
        )
        engine.shorten_delays(outcome.alarm, delay_of, actor)
    return outcome.alarm


def schedule_seconds(alarm: Alarm) -> float:
    """At most how long the alarm's escalation lasts, from its trigger to its last step."""
    one_round = sum(step["delay_seconds"] for step in alarm.steps_snapshot)
    return (one_round + alarm.repeat_after_seconds) * alarm.repeat_count + one_round


def from_opsgenie(device: Device, run: str, actor: Actor) -> Alarm:
    """As POST /v2/alerts with this integration's key."""
    alert = {
        "message": f"{TITLE_PREFIX}Go-live test alert from an Opsgenie sender",
        "alias": f"test-{run}",
        "description": "Raised by a go-live test; it is resolved when the test ends.",
        "priority": "P1",
        "tags": ["test"],
        "source": socket.gethostname(),
    }
    data = validated(opsgenie.CreateSerializer, alert)
    return opsgenie.raise_from(device, actor, data, labels=drill_labels(run)).alarm
