"""The seed's on-call part: teams, rotations and schedules (with their rules, overrides and
temporary schedules), loaded with the same checks as the admin. A schedule's `rules` list,
when given, is the whole list; overrides and temporary schedules it lists are added when not
stored yet, never removed (people swap shifts from their phones meanwhile)."""

import zoneinfo
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.time_windows import local_instant
from devices.models import Person
from oncall import rotations
from oncall.models import (
    Override,
    Rotation,
    Schedule,
    ScheduleRule,
    Team,
    TemporarySchedule,
    TemporaryShift,
)

TEAM_KEYS = ["name", "members", "default_policy"]
ROTATION_FIELDS = ["time_zone", "start_date", "handoff_time", "shift_unit", "shift_length"]
SCHEDULE_FIELDS = ["description", "time_zone", "reminder_minutes", "handoff_message"]
SCHEDULE_RULE_FIELDS = ["name", "layer", "days", "start_time", "end_time", "active_from",
                        "active_until"]  # fmt: skip
SCHEDULE_RULE_KEYS = [*SCHEDULE_RULE_FIELDS, "person", "rotation"]
OVERRIDE_KEYS = ["kind", "person", "replaces", "starts_at", "ends_at", "note"]
TEMPORARY_KEYS = ["starts_at", "ends_at", "note", "shifts"]
SHIFT_KEYS = ["person", "starts_at", "ends_at"]


class OnCallLoading:
    """The loader's methods for the on-call kinds, mixed into `seed.Loader` (whose `plain`,
    `ref`, `store`, `checked` and `known_keys` they use)."""

    def load_teams(self, entries) -> None:
        for entry, item in entries:
            team = self.stored(Team, entry, item["name"])
            state = self.store(entry, team, {})
            if "members" in item:
                members = self.refs(entry, Person, "members", item["members"])
                if {p.pk for p in team.members.all()} != {p.pk for p in members}:
                    team.members.set(members)
                    state = "updated" if state == "unchanged" else state
            self.report.note("teams", team.name, state)

    def link_team_policies(self, entries, policy_model) -> None:
        """After the policies: each team's default policy (a policy may belong to the team)."""
        for entry, item in entries:
            if "default_policy" in item:
                team = Team.objects.get(name=item["name"])
                values = self.named_refs(entry, item, {"default_policy": policy_model})
                if self.store(entry, team, values) == "updated":
                    self.report.note("teams", team.name, "updated")

    def load_rotations(self, entries) -> None:
        for entry, item in entries:
            rotation = self.stored(Rotation, entry, item["name"])
            values = self.plain(entry, Rotation, item, ROTATION_FIELDS)
            values.update(self.named_refs(entry, item, {"team": Team}))
            state = self.store(entry, rotation, values)
            if "participants" in item:
                people = [p.pk for p in self.refs(entry, Person, "participants",
                                                  item["participants"])]  # fmt: skip
                stored = list(rotation.members.values_list("person_id", flat=True))
                if stored != people:
                    rotations.set_participants(rotation, people, timezone.now())
                    state = "updated" if state == "unchanged" else state
            self.report.note("rotations", rotation.name, state)

    def load_schedules(self, entries) -> None:
        for entry, item in entries:
            schedule = self.stored(Schedule, entry, item["name"])
            values = self.plain(entry, Schedule, item, SCHEDULE_FIELDS)
            values.update(self.named_refs(entry, item, {"team": Team, "fallback_person": Person}))
            state = self.store(entry, schedule, values)
            changed = False
            if "rules" in item:
                changed |= self.load_schedule_rules(entry, schedule, item["rules"])
            for index, override in enumerate(self.listed(entry, item, "overrides")):
                changed |= self.add_override(entry, schedule, index, override)
            for index, temporary in enumerate(self.listed(entry, item, "temporary_schedules")):
                changed |= self.add_temporary(entry, schedule, index, temporary)
            if changed and state == "unchanged":
                state = "updated"
            self.report.note("schedules", schedule.name, state)

    def listed(self, entry, item: dict, key: str) -> list:
        items = item.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise entry.fail(f"{key}: must be a list of mappings")
        return items

    def load_schedule_rules(self, entry, schedule: Schedule, items) -> bool:
        """Make the schedule's rules the listed ones; True when they changed."""
        wanted = []
        for index, item in enumerate(self.listed(entry, {"rules": items}, "rules")):
            where = f"rules[{index}]"
            self.known_keys(entry, where, item, SCHEDULE_RULE_KEYS)
            values = self.plain(entry, ScheduleRule, item, SCHEDULE_RULE_FIELDS)
            refs = {"person": Person, "rotation": Rotation}
            values.update({key: self.ref(model, entry, f"{where}.{key}", item[key])
                           for key, model in refs.items() if key in item})  # fmt: skip
            rule = ScheduleRule(schedule=schedule, **values)
            self.checked(entry, where, rule)
            wanted.append(rule)
        fields = [*SCHEDULE_RULE_FIELDS, "person_id", "rotation_id"]

        def rows(rules):  # in any order: stored rules come back by layer
            return sorted(tuple(str(getattr(rule, name)) for name in fields) for rule in rules)

        if rows(schedule.rules.all()) == rows(wanted):
            return False
        schedule.rules.all().delete()
        ScheduleRule.objects.bulk_create(wanted)
        return True

    def add_override(self, entry, schedule: Schedule, index: int, item: dict) -> bool:
        where = f"overrides[{index}]"
        self.known_keys(entry, where, item, OVERRIDE_KEYS)
        values = {key: item[key] for key in ("kind", "note") if key in item}
        for key in ("person", "replaces"):
            values[key] = self.ref(Person, entry, f"{where}.{key}", item.get(key))
        for key in ("starts_at", "ends_at"):
            values[key] = self.instant(entry, f"{where}.{key}", item.get(key), schedule.time_zone)
        override = Override(schedule=schedule, **values)
        if Override.objects.filter(schedule=schedule, **values).exists():
            return False
        override.created_by = "seed"
        self.checked(entry, where, override)
        override.save()
        return True

    def add_temporary(self, entry, schedule: Schedule, index: int, item: dict) -> bool:
        where = f"temporary_schedules[{index}]"
        self.known_keys(entry, where, item, TEMPORARY_KEYS)
        tz = schedule.time_zone
        span = {key: self.instant(entry, f"{where}.{key}", item.get(key), tz)
                for key in ("starts_at", "ends_at")}  # fmt: skip
        shifts = []
        for number, shift in enumerate(self.listed(entry, item, "shifts")):
            at = f"{where}.shifts[{number}]"
            self.known_keys(entry, at, shift, SHIFT_KEYS)
            shifts.append(
                TemporaryShift(
                    person=self.ref(Person, entry, f"{at}.person", shift.get("person")),
                    starts_at=self.instant(entry, f"{at}.starts_at", shift.get("starts_at"), tz),
                    ends_at=self.instant(entry, f"{at}.ends_at", shift.get("ends_at"), tz),
                )
            )
        stored = TemporarySchedule.objects.filter(schedule=schedule, **span).first()
        temporary = stored or TemporarySchedule(schedule=schedule, **span)
        temporary.note = item.get("note", temporary.note)
        self.checked(entry, where, temporary)
        listed = sorted((s.person.pk, s.starts_at, s.ends_at) for s in shifts)
        if stored and listed == sorted(stored.shifts.values_list("person_id", "starts_at",
                                                                 "ends_at")):  # fmt: skip
            return False
        with transaction.atomic():
            temporary.save()
            temporary.shifts.all().delete()
            for number, shift in enumerate(shifts):
                shift.temporary = temporary
                self.checked(entry, f"{where}.shifts[{number}]", shift)
                shift.save()
        return True

    def instant(self, entry, where: str, value, tz: str) -> datetime:
        """An instant from the seed: with an offset as given, without one on the schedule's
        wall clock ("2026-12-24 18:00")."""
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, str):
            parsed = parse_datetime(value.strip())
        else:
            parsed = None
        if parsed is None or isinstance(value, date) and not isinstance(value, datetime):
            raise entry.fail(f"{where}: must be a date and time, e.g. 2026-12-24 18:00")
        if parsed.tzinfo is None:
            parsed = local_instant(parsed, zoneinfo.ZoneInfo(tz))
        return parsed
