"""Demo data for a first look: a clinic, its people, a desk phone, a panic button, the
"Reception" team with a day/night rotation of the three people, and a policy whose first step
pages whoever is on call.

Idempotent: a second run finds everything in place, creates nothing and shows no secret again.
"""

import os
import secrets
from dataclasses import dataclass, field
from datetime import date, time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.urls import reverse

from devices.models import Device, NotificationRule, Person, Room, Site
from escalation.models import EscalationPolicy, EscalationStep
from notifications.models import NotificationChannel
from oncall.models import Rotation, RotationMember, Schedule, ScheduleRule, Team

PEOPLE = [
    ("Alice Adams", "alice@example.org", "+442079460018"),
    ("Bob Baker", "bob@example.org", ""),
    ("Carol Chen", "carol@example.org", ""),
]


@dataclass
class Created:
    """What this run created, and the secrets to show once."""

    names: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


def trigger_url_file():
    return settings.VAR_DIR / "demo-trigger-url"


def write_private(path, text: str) -> None:
    """Write a file only its owner can read: it holds a live device token."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


class Command(BaseCommand):
    help = "Create the demo clinic, its people, devices and escalation policy (idempotent)."

    def handle(self, *args, **options):
        created = Created()
        with transaction.atomic():
            self.load(created)
        for line in created.secrets:
            self.stdout.write(line)
        if created.names:
            self.stdout.write(self.style.SUCCESS(f"Created {len(created.names)} demo objects:"))
            for name in created.names:
                self.stdout.write(f"  {name}")
        else:
            self.stdout.write("Demo data already present; nothing created.")

    def load(self, created: Created) -> None:
        self.load_admin(created)
        site = self.get_or_create(created, Site, name="Demo Clinic")
        reception = self.get_or_create(created, Room, site=site, name="Reception")
        treatment = self.get_or_create(created, Room, site=site, name="Treatment 1")
        alice, bob, carol = (
            self.get_or_create(
                created, Person, name=name, defaults={"email": email, "phone": phone}
            )
            for name, email, phone in PEOPLE
        )
        # No receiver runs on this machine: the channel shows the shape and is off until an
        # operator sets a real URL and enables it.
        webhook = self.get_or_create(
            created,
            NotificationChannel,
            name="Demo webhook (disabled: set its URL, then enable)",
            defaults={
                "kind": "webhook",
                "config": {"url": "http://127.0.0.1:9/alarm-hook"},
                "enabled": False,
            },
        )
        self.load_rules(created, alice)
        reception_desk = self.load_on_call(created, alice, bob, carol)
        policy = self.load_policy(created, reception_desk, [alice, bob, carol], webhook)
        if reception_desk.team.default_policy is None:
            reception_desk.team.default_policy = policy
            reception_desk.team.save()
        phone = self.load_device(
            created,
            name="Reception desk phone",
            kind=Device.Kind.YEALINK,
            room=reception,
            person=carol,
            default_policy=policy,
        )
        if phone is not None:
            url = settings.PUBLIC_BASE_URL + reverse("yealink-alarm") + f"?token={phone}"
            write_private(trigger_url_file(), url)
            created.secrets.append(f"Desk phone trigger URL (shown once, kept in var/): {url}")
        button = self.load_device(
            created,
            name="Treatment 1 panic button",
            kind=Device.Kind.GENERIC,
            room=treatment,
            default_policy=policy,
        )
        if button is not None:
            created.secrets.append(f"Panic button API token (shown once): {button}")

    def get_or_create(self, created: Created, model, defaults=None, **lookup):
        obj, new = model.objects.get_or_create(defaults=defaults, **lookup)
        if new:
            created.names.append(f"{model._meta.verbose_name} {obj}")
        return obj

    def load_admin(self, created: Created) -> None:
        users = get_user_model().objects
        if users.filter(username="admin").exists():
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser("admin", "admin@example.org", password)
        created.names.append("superuser admin")
        created.secrets.append(f"Admin login (shown once): admin / {password}")

    def load_on_call(self, created: Created, *people) -> Schedule:
        """The Reception team: 12-hour shifts handed over at 07:00 and 19:00, in turn."""
        team = self.get_or_create(created, Team, name="Reception")
        if not team.members.exists():
            team.members.set(people)
        rotation = self.get_or_create(
            created,
            Rotation,
            name="Reception day/night",
            defaults={"team": team, "start_date": date(2026, 1, 5), "handoff_time": time(7),
                      "shift_unit": Rotation.Unit.HOURS, "shift_length": 12},
        )  # fmt: skip
        if not rotation.members.exists():
            for position, person in enumerate(people):
                RotationMember.objects.create(rotation=rotation, person=person, position=position)
        schedule = self.get_or_create(
            created,
            Schedule,
            name="Reception",
            defaults={"team": team, "fallback_person": people[0]},
        )
        if not schedule.rules.exists():
            ScheduleRule.objects.create(
                schedule=schedule, name="Around the clock", rotation=rotation
            )
        return schedule

    def load_policy(self, created: Created, schedule, everyone, webhook) -> EscalationPolicy:
        policy = self.get_or_create(
            created,
            EscalationPolicy,
            name="Demo: on call, then everyone",
            defaults={"repeat_count": 1, "repeat_after_seconds": 120, "team": schedule.team},
        )
        for order, delay, targets in [
            (0, 0, {"schedules": [schedule], "channels": [webhook]}),
            (1, 60, {"persons": everyone}),
        ]:
            step, new = EscalationStep.objects.get_or_create(
                policy=policy,
                order=order,
                defaults={"delay_seconds": delay, "methods": ["personal"]},
            )
            # Only a new step gets its targets: an operator's edits survive a second run.
            if new:
                for key, rows in targets.items():
                    getattr(step, key).set(rows)
                created.names.append(f"escalation step {order + 1} of {policy}")
        return policy

    def load_rules(self, created: Created, alice) -> None:
        """Alice's own way to be reached: push at once, SMS after 2 minutes, a call after 5,
        email after 10; low urgency by email. Off until an operator enables the push server
        (and an SMS and a call gateway): until then her email goes at once instead."""
        self.get_or_create(
            created,
            NotificationChannel,
            name="Demo ntfy (disabled: set its URL, then enable)",
            defaults={"kind": "ntfy", "config": {"url": "http://127.0.0.1:2586"}, "enabled": False},
        )
        if not alice.ntfy_topic:
            alice.issue_ntfy_topic()
            alice.save(update_fields=["ntfy_topic"])
        for urgency, method, minutes in [("high", "ntfy", 0), ("high", "sms", 2),
                                         ("high", "voice", 5), ("high", "email", 10),
                                         ("low", "email", 0)]:  # fmt: skip
            self.get_or_create(created, NotificationRule, person=alice, urgency=urgency,
                               method=method, defaults={"delay_minutes": minutes})  # fmt: skip

    def load_device(self, created: Created, name: str, **fields) -> str | None:
        """Create the device unless it exists; return its token only when it was just issued."""
        if Device.objects.filter(name=name).exists():
            return None
        device = Device.objects.create(name=name, **fields)
        created.names.append(f"device {device}")
        return device.issued_token
