"""Configuration as a file, written out: the stored sites, rooms, people, channels, policies,
devices, routing rules and inhibitions as one seed document (what `seed.load` reads back),
with every secret a channel's transport marks as one written as a ${SEED_…} placeholder."""

import re
from datetime import time

import yaml
from django.db import models

from devices.models import Device, Person, Room, Site
from escalation.models import (
    EscalationPolicy,
    EscalationStep,
    Inhibition,
    RoutingRule,
    default_time_zone,
)
from notifications.models import NotificationChannel
from notifications.transports import CHANNEL_KINDS, transport_class

from .seed import (
    ALWAYS_EXPORTED,
    CHANNEL_FIELDS,
    DEVICE_FIELDS,
    ENV_PREFIX,
    FORMAT_VERSION,
    INHIBITION_FIELDS,
    PERSON_FIELDS,
    POLICY_FIELDS,
    RULE_FIELDS,
    SITE_FIELDS,
    SeedError,
)


def export() -> dict:
    """The stored configuration as a seed document; secrets become ${SEED_…} placeholders."""
    for model, what in ((Person, "people"), (RoutingRule, "routing rules"),
                        (Inhibition, "inhibitions")):  # fmt: skip
        duplicated = (
            model.objects.values("name")
            .annotate(n=models.Count("pk"))
            .filter(n__gt=1)
            .order_by("name")
            .first()
        )
        if duplicated:
            raise SeedError(f'{duplicated["n"]} {what} are named "{duplicated["name"]}"; names '
                            "identify objects in a seed, rename one first")  # fmt: skip
    rooms = models.Prefetch("rooms", queryset=Room.objects.order_by("name"))
    sites = Site.objects.select_related("default_policy").prefetch_related(rooms)
    steps = EscalationStep.objects.order_by("order").prefetch_related("persons", "channels")
    policies = EscalationPolicy.objects.prefetch_related(models.Prefetch("steps", queryset=steps))
    document = {
        "version": FORMAT_VERSION,
        "sites": [export_site(site) for site in sites],
        "people": [export_person(person) for person in Person.objects.select_related("user")],
        "channels": [export_channel(channel) for channel in NotificationChannel.objects.all()],
        "policies": [export_policy(policy) for policy in policies],
        "devices": [
            export_device(d)
            for d in Device.objects.select_related("site", "room", "person", "default_policy")
        ],  # fmt: skip
        "routing_rules": [
            export_rule(rule)
            for rule in RoutingRule.objects.select_related("device", "site", "room__site", "policy")
        ],  # fmt: skip
        "inhibitions": [export_plain(i, INHIBITION_FIELDS) for i in Inhibition.objects.all()],
    }
    return {key: value for key, value in document.items() if value != []}


class _Dumper(yaml.SafeDumper):
    """Multi-line text (templates, network lists) as readable | blocks."""


def _text(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper, value: list):
    """Lists of names or methods on one line, as people write them: [email, sms]."""
    flow = all(isinstance(item, str | int) and "\n" not in str(item) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _text)
_Dumper.add_representer(list, _list)


def dump(document: dict) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def export_plain(obj, names: list[str]) -> dict:
    """name, then each field that differs from the model's default."""
    out = {"name": obj.name}
    for name in names:
        value = getattr(obj, name)
        if name in ALWAYS_EXPORTED or value != obj._meta.get_field(name).get_default():
            out[name] = value.isoformat("minutes" if not value.second else "seconds") if (
                isinstance(value, time)) else value  # fmt: skip
    return out


def named(obj, key: str, out: dict) -> None:
    if obj is not None:
        out[key] = obj.name


def export_site(site: Site) -> dict:
    out = export_plain(site, SITE_FIELDS)
    named(site.default_policy, "default_policy", out)
    rooms = [room.name for room in site.rooms.all()]
    if rooms:
        out["rooms"] = rooms
    return out


def export_person(person: Person) -> dict:
    out = export_plain(person, PERSON_FIELDS)
    if person.user is not None:
        out["user"] = person.user.get_username()
    return out


def export_channel(channel: NotificationChannel) -> dict:
    out = export_plain(channel, CHANNEL_FIELDS)
    if channel.kind in CHANNEL_KINDS:
        out["config"] = exported_config(channel)
    if not out.get("config"):
        out.pop("config", None)
    return out


def exported_config(channel: NotificationChannel) -> dict:
    """The config without defaults, each secret value replaced by ${SEED_<CHANNEL>_<KEY>}."""
    config = {}
    prefix = ENV_PREFIX + channel.name  # placeholder() makes it a variable name
    for spec in transport_class(channel.kind).config_fields:
        value = channel.config.get(spec.name)
        if value in (None, "", {}, []) or value == spec.default:
            continue
        if spec.secret and isinstance(value, dict):
            value = {k: placeholder(f"{prefix}_{spec.name}_{k}") for k in value}
        elif spec.secret:
            value = placeholder(f"{prefix}_{spec.name}")
        config[spec.name] = value
    return config


def placeholder(name: str) -> str:
    return "${" + re.sub(r"[^A-Z0-9]+", "_", name.upper()) + "}"


def export_policy(policy: EscalationPolicy) -> dict:
    out = export_plain(policy, POLICY_FIELDS)
    out["steps"] = [export_step(step) for step in policy.steps.all()]
    return out


def export_step(step: EscalationStep) -> dict:
    out = {"delay_seconds": step.delay_seconds}
    persons = sorted(p.name for p in step.persons.all())
    if persons:
        out["persons"] = persons
    out["methods"] = list(step.methods)
    channels = sorted(c.name for c in step.channels.all())
    if channels:
        out["channels"] = channels
    return out


def export_device(device: Device) -> dict:
    out = {"name": device.name, "kind": device.kind}
    for key in ("site", "room", "person", "default_policy"):
        named(getattr(device, key), key, out)
    return {**out, **export_plain(device, DEVICE_FIELDS)}


def export_rule(rule: RoutingRule) -> dict:
    out = export_plain(rule, RULE_FIELDS)
    if not (rule.days or rule.start_time or rule.time_zone != default_time_zone()):
        out.pop("time_zone")
    named(rule.device, "device", out)
    # A room is named at its site: a rule that names only the room gets the room's site.
    named(rule.site or (rule.room.site if rule.room else None), "site", out)
    named(rule.room, "room", out)
    named(rule.policy, "policy", out)
    return out
