"""Configuration as a file: load sites, rooms, people, channels, escalation policies, devices,
routing rules and inhibitions from one YAML (or JSON) document, and write them back out.

A load runs in one transaction: any error leaves everything as it was, and names the entry and
field. Objects are found by their natural keys (names; a room by site and name). A key left out
of an entry keeps the stored value (a new object gets the model's default); a policy's `steps`
list, when given, is the whole list. Nothing is ever deleted but steps a policy no longer lists.
"""

import json
import os
import re
from dataclasses import dataclass, field

import yaml
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from core.storable_text import made_storable
from devices.models import Device, NotificationRule, Person, Room, Site
from escalation.models import (
    EscalationPolicy,
    Inhibition,
    RoutingRule,
)
from notifications.models import NotificationChannel
from oncall.models import Team

from .seed_oncall import ROTATION_FIELDS, SCHEDULE_FIELDS, TEAM_KEYS, OnCallLoading
from .seed_policies import POLICY_FIELDS, PolicyLoading

FORMAT_VERSION = 1
# The report's kinds, in the order a load handles them (each may name the ones before it).
KINDS = ["people", "channels", "teams", "rotations", "schedules", "policies", "sites", "rooms",
         "devices", "routing_rules", "inhibitions"]  # fmt: skip
# The document's top-level keys, in the order an export writes them.
TOP_LEVEL = ["version", "sites", "people", "teams", "rotations", "schedules", "channels",
             "policies", "devices", "routing_rules", "inhibitions"]  # fmt: skip
STATES = ("created", "updated", "unchanged")

PERSON_FIELDS = ["email", "phone", "signal_number", "extension", "ntfy_topic", "active"]
CHANNEL_FIELDS = ["kind", "enabled", "config", "subject_template", "body_template"]
SITE_FIELDS = ["address"]
# A panel's key is a secret the seed does not carry: it is set in the admin.
DEVICE_FIELDS = ["kind", "enabled", "allowed_networks", "mac_address", "rate_limit_per_minute",
                 "heartbeat_interval_seconds", "sia_account"]  # fmt: skip
RULE_FIELDS = ["order", "enabled", "source", "min_severity", "matchers", "days", "start_time",
               "end_time", "time_zone", "outside_window", "set_severity", "silence",
               "continue_matching"]  # fmt: skip
INHIBITION_FIELDS = ["enabled", "source_matchers", "target_matchers", "equal"]
# Exported even when they hold the default: a reader needs them to make sense of the rest.
ALWAYS_EXPORTED = {"kind", "time_zone"}

# Only variables with this prefix are substituted, so a seed posted to the API cannot copy the
# server's own settings (SECRET_KEY, DATABASE_URL…) into a channel and send them somewhere.
ENV_PREFIX = "SEED_"
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")

YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
JSON_TYPES = {"application/json"}


class SeedError(Exception):
    """A seed that cannot be loaded as it is; the message names the entry and field."""


@dataclass(frozen=True)
class Entry:
    """Where in the document an error is, for its message: devices[3] "Desk phone 2"."""

    kind: str
    index: int
    name: str = ""

    def fail(self, text: str) -> SeedError:
        named = f' "{self.name}"' if self.name else ""
        return SeedError(f"{self.kind}[{self.index}]{named}: {text}")


@dataclass
class Report:
    """What a load created, updated and left unchanged, per kind, and the new devices' tokens."""

    dry_run: bool = False
    objects: dict = field(default_factory=lambda: {k: {s: [] for s in STATES} for k in KINDS})
    device_tokens: dict = field(default_factory=dict)

    def note(self, kind: str, name: str, state: str) -> None:
        """An object met twice (a policy that lost the global default, then listed) keeps the
        stronger of its states: created, then updated, then unchanged."""
        seen = self.objects[kind]
        for earlier in STATES:
            if name in seen[earlier]:
                if STATES.index(earlier) <= STATES.index(state):
                    return
                seen[earlier].remove(name)
        seen[state].append(name)

    @property
    def changed(self) -> bool:
        return any(states["created"] or states["updated"] for states in self.objects.values())

    def counts(self) -> dict:
        return {kind: {s: len(names) for s, names in states.items()}
                for kind, states in self.objects.items()}  # fmt: skip

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            "counts": self.counts(),
            "objects": self.objects,
            "device_tokens": self.device_tokens,
        }

    def lines(self) -> list[str]:
        lines = []
        for kind, states in self.objects.items():
            parts = []
            for state, names in states.items():
                if names:
                    listed = f" ({', '.join(names)})" if state != "unchanged" else ""
                    parts.append(f"{len(names)} {state}{listed}")
            if parts:
                lines.append(f"{kind}: {'; '.join(parts)}")
        return lines or ["The seed names no objects."]


# --- reading the document ------------------------------------------------------------------


def parse(text: str, content_type: str = "application/yaml") -> dict:
    """The document as a mapping; YAML unless the content type says JSON."""
    try:
        if content_type in JSON_TYPES:
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise SeedError(f"not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise SeedError(f"not valid YAML: {exc}") from None
    if data is None:
        data = {}
    check_size(data)
    if unstorable := made_storable(data)[1]:
        raise SeedError(f"{unstorable[0]}: holds a NUL or a lone surrogate, which no database "
                        "stores; configuration is taken as written or not at all")  # fmt: skip
    if not isinstance(data, dict):
        raise SeedError("the seed must be a mapping of kinds (sites, people, devices…)")
    unknown = [str(key) for key in data if key not in TOP_LEVEL]
    if unknown:
        raise SeedError(f"unknown top-level key(s): {', '.join(unknown)}; known: "
                        f"{', '.join(TOP_LEVEL)}")  # fmt: skip
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise SeedError(f"version {data['version']!r} is not supported (only {FORMAT_VERSION})")
    return data


# Values in a document, counted with YAML aliases expanded; a few nested aliases would otherwise
# make a small body into billions of values to walk.
MAX_VALUES = 100_000


def check_size(data) -> None:
    count, pending = 0, [data]
    while pending:
        value = pending.pop()
        count += 1
        if count > MAX_VALUES:
            raise SeedError(f"the seed holds more than {MAX_VALUES} values (aliases expanded)")
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def load(data: dict, *, dry_run: bool = False, environ=None) -> Report:
    """Create or update everything the document names, in one transaction; a dry run checks
    and reports the same way, then rolls back."""
    report = Report(dry_run=dry_run)
    loader = Loader(report, os.environ if environ is None else environ)
    try:
        with transaction.atomic():
            loader.load(data)
            if dry_run:
                transaction.set_rollback(True)
    except IntegrityError as exc:
        # Another change (an admin save, a second seed) took a name this one was creating.
        raise SeedError(f"a concurrent change got in the way, nothing was saved: {exc}") from None
    if dry_run:
        report.device_tokens = {}  # those devices were never stored
    return report


def describe(exc: ValidationError) -> str:
    """A model's ValidationError as one line: 'phone: … ; room: …'."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    parts = []
    for name, errors in exc.message_dict.items():
        text = " ".join(errors)
        parts.append(text if name == "__all__" else f"{name}: {text}")
    return "; ".join(parts)


def substitute(value, environ, path: str):
    """`${SEED_NAME}` in any string of a channel's config, from the environment."""
    if isinstance(value, dict):
        return {k: substitute(v, environ, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, environ, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def one(match):
        name = match.group(1)
        if not (name.startswith(ENV_PREFIX) and ENV_NAME.fullmatch(name)):
            raise SeedError(f"{path}: ${{{name}}}: only variables named {ENV_PREFIX}… "
                            "(capitals, digits, _) are substituted")  # fmt: skip
        if name not in environ:
            raise SeedError(f"{path}: environment variable {name} is not set")
        return environ[name]

    return PLACEHOLDER.sub(one, value)


class Loader(PolicyLoading, OnCallLoading):
    """One load: walks the kinds in dependency order, each entry found or made, checked with
    the model's own full_clean(), and saved only when something differs."""

    def __init__(self, report: Report, environ):
        self.report = report
        self.environ = environ
        self.default_policy_entry = None

    def load(self, data: dict) -> None:
        self.load_people(self.entries(data, "people", ["name", "user", *PERSON_FIELDS, "rules"]))
        self.load_channels(self.entries(data, "channels", ["name", *CHANNEL_FIELDS]))
        teams = self.entries(data, "teams", TEAM_KEYS)
        self.load_teams(teams)
        rotation_keys = ["name", *ROTATION_FIELDS, "team", "participants"]
        self.load_rotations(self.entries(data, "rotations", rotation_keys))
        schedule_keys = ["name", *SCHEDULE_FIELDS, "team", "fallback_person", "rules",
                         "overrides", "temporary_schedules"]  # fmt: skip
        self.load_schedules(self.entries(data, "schedules", schedule_keys))
        policy_keys = ["name", *POLICY_FIELDS, "team", "steps"]
        self.load_policies(self.entries(data, "policies", policy_keys))
        self.link_team_policies(teams, EscalationPolicy)
        site_keys = ["name", *SITE_FIELDS, "default_policy", "rooms"]
        self.load_sites(self.entries(data, "sites", site_keys))
        device_keys = ["name", *DEVICE_FIELDS, "site", "room", "person", "default_policy"]
        self.load_devices(self.entries(data, "devices", device_keys))
        rule_keys = ["name", *RULE_FIELDS, "team", "device", "site", "room", "policy"]
        self.load_rules(self.entries(data, "routing_rules", rule_keys))
        self.load_inhibitions(self.entries(data, "inhibitions", ["name", *INHIBITION_FIELDS]))

    # --- the walk, generic parts

    def entries(self, data: dict, kind: str, keys: list[str]) -> list[tuple[Entry, dict]]:
        items = data.get(kind) or []
        if not isinstance(items, list):
            raise SeedError(f"{kind}: must be a list of entries")
        found, names = [], set()
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise Entry(kind, index).fail("an entry must be a mapping with a name")
            name = item.get("name")
            entry = Entry(kind, index, str(name) if isinstance(name, str | int) else "")
            if not isinstance(name, str) or not name.strip():
                raise entry.fail("name: a name is required")
            unknown = [str(key) for key in item if key not in keys]
            if unknown:
                raise entry.fail(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(keys)}")
            if name in names:
                raise entry.fail("name: this name appears twice in the seed")
            names.add(name)
            found.append((entry, item))
        return found

    def find(self, model, entry: Entry, what: str, **lookup):
        """The one stored object with this natural key, or None."""
        matches = list(model.objects.filter(**lookup)[:2])
        if len(matches) > 1:
            raise entry.fail(f"{what}: more than one is stored under this name; rename one "
                             "in the admin")  # fmt: skip
        return matches[0] if matches else None

    def ref(self, model, entry: Entry, key: str, name, **scope):
        """The object a key names (None for null or ''); an error names what is missing."""
        if name in (None, ""):
            return None
        if not isinstance(name, str):
            raise entry.fail(f"{key}: must be a name")
        label = model._meta.verbose_name
        found = self.find(model, entry, f'{key} "{name}"', name=name, **scope)
        if found is None:
            where = f' at site "{scope["site"].name}"' if "site" in scope else ""
            prefix = "" if key == label else f"{key}: "
            raise entry.fail(f'{prefix}{label} "{name}" does not exist{where}')
        return found

    def plain(self, entry: Entry, model, item: dict, names: list[str]) -> dict:
        """The entry's values for the model's own fields, made ready for full_clean()."""
        values = {}
        for name in names:
            if name not in item:
                continue
            value, model_field = item[name], model._meta.get_field(name)
            if isinstance(value, dict | list) and not isinstance(model_field, models.JSONField):
                raise entry.fail(f"{name}: must be a single value")
            if value is None and not model_field.null and model_field.empty_strings_allowed:
                value = ""
            if isinstance(model_field, models.TimeField) and isinstance(value, int):
                # YAML 1.1 reads an unquoted 18:00 as the number 1080 (base 60).
                value = f"{value // 60:02d}:{value % 60:02d}"
            values[name] = value
        return values

    def store(self, entry: Entry, obj, values: dict) -> str:
        """Set the values, check the object as the admin would, save it if it differs; return
        created, updated or unchanged."""
        adding = obj._state.adding
        tracked = [obj._meta.get_field(name).attname for name in values]
        before = {name: getattr(obj, name) for name in tracked}
        for name, value in values.items():
            setattr(obj, name, value)
        try:
            obj.full_clean()
        except ValidationError as exc:
            raise entry.fail(describe(exc)) from None
        if not adding and before == {name: getattr(obj, name) for name in tracked}:
            return "unchanged"
        obj.save()
        return "created" if adding else "updated"

    def checked(self, entry: Entry, where: str, obj, **options) -> None:
        """The object checked as the admin would (`full_clean(**options)`); an error names
        where it is."""
        try:
            obj.full_clean(**options)
        except ValidationError as exc:
            raise entry.fail(f"{where}: {describe(exc)}") from None

    def known_keys(self, entry: Entry, where: str, item: dict, keys: list[str]) -> None:
        unknown = [str(key) for key in item if key not in keys]
        if unknown:
            raise entry.fail(f"{where}: unknown key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(keys)}")  # fmt: skip

    def stored(self, model, entry: Entry, name: str):
        """The stored object of this name, or a new unsaved one."""
        return self.find(model, entry, "name", name=name) or model(name=name)

    # --- each kind

    def load_people(self, entries) -> None:
        for entry, item in entries:
            person = self.stored(Person, entry, item["name"])
            values = self.plain(entry, Person, item, PERSON_FIELDS)
            if "user" in item:
                values["user"] = self.user(entry, item["user"])
            outcome = self.store(entry, person, values)
            if "rules" in item and self.load_notification_rules(entry, person, item["rules"]):
                outcome = "updated" if outcome == "unchanged" else outcome
            self.report.note("people", person.name, outcome)

    def load_notification_rules(self, entry: Entry, person, rules) -> bool:
        """The person's notification rules, as listed ([{method, after_minutes, urgency}]);
        return whether they changed."""
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise entry.fail("rules: a list of {method, after_minutes, urgency}")
        wanted = []
        for n, rule in enumerate(rules, 1):
            self.known_keys(entry, f"rule {n}", rule, ["method", "after_minutes", "urgency"])
            made = NotificationRule(
                person=person, method=rule.get("method"), urgency=rule.get("urgency", "high"),
                delay_minutes=rule.get("after_minutes", 0),
            )  # fmt: skip
            self.checked(entry, f"rule {n}", made, exclude=["person"], validate_unique=False)
            wanted.append((made.urgency, made.method, made.delay_minutes))
        if len(set((u, m) for u, m, _ in wanted)) < len(wanted):
            raise entry.fail("rules: one rule per contact point and urgency")
        have = list(person.rules.values_list("urgency", "method", "delay_minutes"))
        if sorted(have) == sorted(wanted):
            return False
        person.rules.all().delete()
        NotificationRule.objects.bulk_create(
            NotificationRule(person=person, urgency=u, method=m, delay_minutes=d)
            for u, m, d in wanted
        )
        return True

    def user(self, entry: Entry, username):
        if username in (None, ""):
            return None
        users = get_user_model().objects
        user = users.filter(**{users.model.USERNAME_FIELD: username}).first()
        if user is None:
            raise entry.fail(f'user: there is no login "{username}"')
        return user

    def load_channels(self, entries) -> None:
        for entry, item in entries:
            channel = self.stored(NotificationChannel, entry, item["name"])
            values = self.plain(entry, NotificationChannel, item, CHANNEL_FIELDS)
            if "config" in values:
                try:
                    values["config"] = substitute(values["config"] or {}, self.environ, "config")
                except SeedError as exc:
                    raise entry.fail(str(exc)) from None
            self.report.note("channels", channel.name, self.store(entry, channel, values))

    def refs(self, entry: Entry, model, key: str, names) -> list:
        if names in (None, ""):
            return []
        if not isinstance(names, list):
            raise entry.fail(f"{key}: must be a list of names")
        return [self.ref(model, entry, key, name) for name in names]

    def named_refs(self, entry: Entry, item: dict, keys: dict) -> dict:
        """The objects the entry names under these keys ({key: model}), for the keys it gives."""
        return {key: self.ref(model, entry, key, item[key]) for key, model in keys.items()
                if key in item}  # fmt: skip

    def load_sites(self, entries) -> None:
        for entry, item in entries:
            site = self.stored(Site, entry, item["name"])
            values = self.plain(entry, Site, item, SITE_FIELDS)
            values.update(self.named_refs(entry, item, {"default_policy": EscalationPolicy}))
            self.report.note("sites", site.name, self.store(entry, site, values))
            self.load_rooms(entry, site, item.get("rooms"))

    def load_rooms(self, entry: Entry, site: Site, names) -> None:
        if names in (None, ""):
            return
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise entry.fail("rooms: must be a list of room names")
        for index, name in enumerate(names):
            room = self.find(Room, entry, f"rooms[{index}]", site=site, name=name)
            state = "unchanged"
            if room is None:
                room = Room(site=site, name=name)
                try:
                    room.full_clean()
                except ValidationError as exc:
                    raise entry.fail(f"rooms[{index}]: {describe(exc)}") from None
                room.save()
                state = "created"
            self.report.note("rooms", str(room), state)

    def located(self, entry: Entry, item: dict, obj) -> dict:
        """site and room of a device or rule: a room is looked up at the entry's site, or at
        the object's stored site when the entry names none."""
        values = {}
        if "site" in item:
            values["site"] = self.ref(Site, entry, "site", item["site"])
        if item.get("room") not in (None, ""):
            site = values["site"] if "site" in item else getattr(obj, "site", None)
            if site is None:
                raise entry.fail(f'room "{item["room"]}" needs a site')
            values["room"] = self.ref(Room, entry, "room", item["room"], site=site)
        elif "room" in item:
            values["room"] = None
        return values

    def load_devices(self, entries) -> None:
        for entry, item in entries:
            device = self.stored(Device, entry, item["name"])
            if device._state.adding:
                device.rotate_token()  # before full_clean(), which requires its hash
            values = self.plain(entry, Device, item, DEVICE_FIELDS)
            values.update(self.located(entry, item, device))
            refs = {"person": Person, "default_policy": EscalationPolicy}
            values.update(self.named_refs(entry, item, refs))
            state = self.store(entry, device, values)
            if state == "created":
                self.report.device_tokens[device.name] = device.issued_token
            self.report.note("devices", device.name, state)

    def load_rules(self, entries) -> None:
        for entry, item in entries:
            rule = self.stored(RoutingRule, entry, item["name"])
            values = self.plain(entry, RoutingRule, item, RULE_FIELDS)
            values.update(self.located(entry, item, rule))
            refs = {"team": Team, "device": Device, "policy": EscalationPolicy}
            values.update(self.named_refs(entry, item, refs))
            self.report.note("routing_rules", rule.name, self.store(entry, rule, values))

    def load_inhibitions(self, entries) -> None:
        for entry, item in entries:
            inhibition = self.stored(Inhibition, entry, item["name"])
            values = self.plain(entry, Inhibition, item, INHIBITION_FIELDS)
            self.report.note("inhibitions", inhibition.name, self.store(entry, inhibition, values))
