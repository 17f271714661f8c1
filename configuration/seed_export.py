"""Configuration as a file, written out: the stored sites, rooms, people, channels, policies,
devices, routing rules and inhibitions as one seed document (what `seed.load` reads back),
with every secret a channel's transport marks as one written as a ${SEED_…} placeholder."""

import re
from datetime import time

import yaml
from django.db import models
from django.utils import timezone

from core.time_windows import default_time_zone
from devices.models import Device, Person, Room, Site
from escalation.models import (
    EscalationPolicy,
    EscalationStep,
    Inhibition,
    RoutingRule,
)
from notifications.models import NotificationChannel
from notifications.transports import CHANNEL_KINDS, transport_class
from oncall.models import Rotation, Schedule, Team

from .seed import (
    ALWAYS_EXPORTED,
    CHANNEL_FIELDS,
    DEVICE_FIELDS,
    ENV_PREFIX,
    FORMAT_VERSION,
    INHIBITION_FIELDS,
    PERSON_FIELDS,
    RULE_FIELDS,
    SITE_FIELDS,
    SeedError,
)
from .seed_oncall import (
    OVERRIDE_KEYS,
    ROTATION_FIELDS,
    SCHEDULE_FIELDS,
    SCHEDULE_RULE_FIELDS,
)
from .seed_policies import POLICY_FIELDS, STEP_TARGETS


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
    steps = EscalationStep.objects.order_by("order").prefetch_related(*STEP_TARGETS)
    policies = EscalationPolicy.objects.select_related("team").prefetch_related(
        models.Prefetch("steps", queryset=steps)
    )
    document = {
        "version": FORMAT_VERSION,
        "sites": [export_site(site) for site in sites],
        "people": [export_person(person) for person in Person.objects.select_related("user")],
        "teams": [
            export_team(team)
            for team in Team.objects.select_related("default_policy").prefetch_related("members")
        ],
        "rotations": [export_rotation(r) for r in Rotation.objects.select_related("team")],
        "schedules": [
            export_schedule(s) for s in Schedule.objects.select_related("team", "fallback_person")
        ],
        "channels": [export_channel(channel) for channel in NotificationChannel.objects.all()],
        "policies": [export_policy(policy) for policy in policies],
        "devices": [
            export_device(d)
            for d in Device.objects.select_related("site", "room", "person", "default_policy")
        ],  # fmt: skip
        "routing_rules": [
            export_rule(rule)
            for rule in RoutingRule.objects.select_related(
                "team", "device", "site", "room__site", "policy"
            )
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
    if rules := list(person.rules.all()):
        out["rules"] = [{"method": r.method, "after_minutes": r.delay_minutes, "urgency": r.urgency}
                        for r in rules]  # fmt: skip
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


def export_team(team: Team) -> dict:
    out = {"name": team.name}
    members = sorted(person.name for person in team.members.all())
    if members:
        out["members"] = members
    named(team.default_policy, "default_policy", out)
    return out


def export_rotation(rotation: Rotation) -> dict:
    out = export_plain(rotation, ROTATION_FIELDS)
    out["start_date"] = rotation.start_date.isoformat()
    out["handoff_time"] = rotation.handoff_time.isoformat("minutes")
    named(rotation.team, "team", out)
    places = rotation.members.select_related("person").order_by("position", "pk")
    out["participants"] = [place.person.name for place in places]
    return out


def export_schedule(schedule: Schedule) -> dict:
    out = export_plain(schedule, SCHEDULE_FIELDS)
    named(schedule.team, "team", out)
    named(schedule.fallback_person, "fallback_person", out)
    out["rules"] = []
    for rule in schedule.rules.select_related("person", "rotation"):
        item = {key: value for key, value in export_plain(rule, SCHEDULE_RULE_FIELDS).items()
                if key != "name" or value}  # fmt: skip
        for key in ("active_from", "active_until"):
            if key in item:
                item[key] = item[key].isoformat()
        named(rule.person, "person", item)
        named(rule.rotation, "rotation", item)
        out["rules"].append(item)
    # What has not ended yet: the past is in the record, not in the configuration.
    now = timezone.now()
    overrides = schedule.overrides.filter(ends_at__gt=now).select_related("person", "replaces")
    if overrides:
        out["overrides"] = [export_override(o) for o in overrides]
    temporaries = schedule.temporaries.filter(ends_at__gt=now).prefetch_related("shifts__person")
    if temporaries:
        out["temporary_schedules"] = [
            {"starts_at": t.starts_at.isoformat(), "ends_at": t.ends_at.isoformat(),
             **({"note": t.note} if t.note else {}),
             "shifts": [{"person": s.person.name, "starts_at": s.starts_at.isoformat(),
                         "ends_at": s.ends_at.isoformat()} for s in t.shifts.all()]}
            for t in temporaries
        ]  # fmt: skip
    return out


def export_override(override) -> dict:
    out = {}
    for key in OVERRIDE_KEYS:
        value = getattr(override, key)
        if key in ("person", "replaces"):
            named(value, key, out)
        elif key in ("starts_at", "ends_at"):
            out[key] = value.isoformat()
        elif value:
            out[key] = value
    return out


def export_policy(policy: EscalationPolicy) -> dict:
    out = export_plain(policy, POLICY_FIELDS)
    named(policy.team, "team", out)
    out["steps"] = [export_step(step) for step in policy.steps.all()]
    return out


def export_step(step: EscalationStep) -> dict:
    out = {"delay_seconds": step.delay_seconds}
    for key in STEP_TARGETS:
        names = sorted(row.name for row in getattr(step, key).all())
        if names:
            out[key] = names
        if key == "rotations":
            out["methods"] = list(step.methods)  # after whom, before the channels
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
    named(rule.team, "team", out)
    named(rule.device, "device", out)
    # A room is named at its site: a rule that names only the room gets the room's site.
    named(rule.site or (rule.room.site if rule.room else None), "site", out)
    named(rule.room, "room", out)
    named(rule.policy, "policy", out)
    return out
