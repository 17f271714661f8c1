"""Checks of the stored configuration as a whole: what no single admin form can see (a policy
nobody uses, a step that reaches nobody, a device whose alarms no policy takes)."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Prefetch

from devices.models import Device, Person, Site
from escalation.models import EscalationPolicy, EscalationStep, RoutingRule
from notifications.delivery import personal
from notifications.delivery.targets import gateway_for, reach
from notifications.models import NotificationChannel
from notifications.transports import CHANNEL_KINDS, PERSON_METHODS, PERSONAL
from oncall import gaps
from oncall.models import Rotation, Schedule

from .seed import describe

# The source of the alarms a device of each kind raises (routing rules match on it).
SOURCE_OF_KIND = {
    Device.Kind.YEALINK: "yealink",
    Device.Kind.GENERIC: "api",
    Device.Kind.ALERTMANAGER: "alertmanager",
    Device.Kind.PAGERDUTY: "pagerduty",
    Device.Kind.METRICS: "metric",
    Device.Kind.SIA_PANEL: "sia",
    Device.Kind.CAP: "cap",
    Device.Kind.OPSGENIE: "opsgenie",
    Device.Kind.EMAIL: "email",
}


@dataclass(frozen=True)
class Problem:
    kind: str  # channel, policy, device
    name: str
    message: str

    def __str__(self):
        return f'{self.kind} "{self.name}": {self.message}'


def problems() -> list[Problem]:
    """Every problem found, channels first, then policies, then devices."""
    return [*channel_problems(), *policy_problems(), *schedule_problems(), *device_problems()]


def channel_problems() -> list[Problem]:
    found = []
    for channel in NotificationChannel.objects.all():
        if channel.kind not in CHANNEL_KINDS:
            found.append(Problem("channel", channel.name, f"unknown kind {channel.kind!r}"))
            continue
        try:
            channel.clean()  # the transport's config validation, as the admin runs it
        except ValidationError as exc:
            found.append(Problem("channel", channel.name, describe(exc)))
    return found


def policy_problems() -> list[Problem]:
    used = used_policy_ids()
    gateways = {method: gateway_for(method) for method in PERSON_METHODS}
    steps = EscalationStep.objects.order_by("order").prefetch_related(
        Prefetch("persons", queryset=Person.objects.filter(active=True)),
        Prefetch("channels", queryset=NotificationChannel.objects.filter(enabled=True)),
    )
    found = []
    for policy in EscalationPolicy.objects.prefetch_related(Prefetch("steps", queryset=steps)):
        if policy.pk not in used:
            found.append(Problem("policy", policy.name, "nothing uses it: no enabled routing "
                                 "rule, device or site names it and it is not the global "
                                 "default"))  # fmt: skip
        found += [Problem("policy", policy.name, text) for text in step_problems(policy, gateways)]
    return found


def used_policy_ids() -> set[int]:
    used = set(RoutingRule.objects.filter(enabled=True).values_list("policy_id", flat=True))
    used |= set(Device.objects.values_list("default_policy_id", flat=True))
    used |= set(EscalationPolicy.objects.filter(is_default=True).values_list("pk", flat=True))
    used |= set(Site.objects.values_list("default_policy_id", flat=True))
    return used - {None}


def step_problems(policy: EscalationPolicy, gateways: dict) -> list[str]:
    steps = list(policy.steps.all())
    if not steps:
        return ["it has no steps"]
    found = []
    for number, step in enumerate(steps, start=1):
        for method in step.methods:
            if method != PERSONAL and not carried(method, gateways):
                found.append(f"step {number} sends {method}, but no enabled channel carries "
                             f"{method}")  # fmt: skip
    if not any(reaches_anybody(step, gateways) for step in steps):
        found.append("no step reaches anybody (no active person with a contact point for the "
                     "step's methods, no enabled channel with a destination)")  # fmt: skip
    return found


def carried(method: str, gateways: dict) -> bool:
    """Whether this method can go out now: email needs no channel (Django's mail settings)."""
    return method == "email" or gateways.get(method) is not None


def reaches_anybody(step: EscalationStep, gateways: dict) -> bool:
    """Whether the step would notify anybody now, as the delivery code decides it."""
    persons = list(step.persons.all())
    rules = personal.rules_of([person.pk for person in persons])
    people = (way for person in persons
              for way in reach(person, step.methods, "critical", rules, gateways)[0])  # fmt: skip
    if step.schedules.exists() or step.rotations.exists():
        return True  # whoever is on call then (gaps are reported with the schedules)
    return any(people) or any(c.transport().address_for(None) for c in step.channels.all())


def schedule_problems() -> list[Problem]:
    """Stretches of the next 14 days with nobody on call, and the routing rules whose policy
    pages such a schedule."""
    found, gappy = [], {}
    for schedule in Schedule.objects.select_related("fallback_person"):
        if stretches := gaps.gaps("schedule", schedule.pk):
            fallback = schedule.fallback_person
            then = (
                f"{fallback} (its fallback) is paged then" if fallback else "nobody is paged then"
            )
            text = f"nobody on call {gaps.describe('schedule', schedule.pk, stretches)}: {then}"
            found.append(Problem("schedule", schedule.name, text))
            gappy[schedule.pk] = schedule.name
    for rotation in Rotation.objects.filter(members=None):
        found.append(Problem("rotation", rotation.name, "it has no participants"))
    steps = EscalationStep.objects.filter(schedules__in=gappy).values_list(
        "policy_id", "schedules"
    )  # fmt: skip
    pages = {}
    for policy_id, schedule_id in steps:
        pages.setdefault(policy_id, set()).add(gappy[schedule_id])
    for rule in RoutingRule.objects.filter(enabled=True, policy_id__in=pages).select_related(
        "policy"
    ):
        names = ", ".join(f"'{name}'" for name in sorted(pages[rule.policy_id]))
        found.append(Problem("routing rule", rule.name, f"its policy '{rule.policy.name}' pages "
                             f"schedule {names}, which has nobody on call at times in the next "
                             "14 days"))  # fmt: skip
    return found


def device_problems() -> list[Problem]:
    devices = list(Device.objects.filter(enabled=True).select_related("site"))
    found = [Problem("device", d.name, d.mapping_problem) for d in devices if d.mapping_problem]
    if EscalationPolicy.objects.filter(is_default=True).exists():
        return found
    rules = list(RoutingRule.objects.filter(enabled=True, silence=False, policy__isnull=False))
    for device in devices:
        if not routed(device, rules):
            found.append(Problem("device", device.name, "no policy takes all its alarms: no "
                                 "default policy (device or site), no routing rule that "
                                 "matches them whatever their time, severity or labels, and "
                                 "no global default policy"))  # fmt: skip
    return found


def routed(device: Device, rules: list[RoutingRule]) -> bool:
    if device.default_policy_id or (device.site and device.site.default_policy_id):
        return True
    return any(takes_every_alarm(rule, device) for rule in rules)


def takes_every_alarm(rule: RoutingRule, device: Device) -> bool:
    """Whether the rule matches every alarm of the device; a rule with a time window, a
    severity or matchers only matches some, so it does not count."""
    if rule.days or rule.start_time or rule.outside_window or rule.min_severity or rule.matchers:
        return False
    return (
        rule.source in ("", SOURCE_OF_KIND.get(device.kind))
        and rule.device_id in (None, device.pk)
        and rule.site_id in (None, device.site_id)
        and rule.room_id in (None, device.room_id)
    )
