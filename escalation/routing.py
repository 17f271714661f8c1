"""Which escalation policies an alarm follows, and whether it is silenced.

Rules run in order; the first that matches decides, unless it says `continue`, in which case
the rules after it may add policies (run in parallel), change the severity again or silence.
Alarms no rule gives a policy fall back to their device's default policy, then their site's,
then the global default. A silence or an inhibition that applies silences the alarm whatever
the rules said: it is stored and shown, but nobody is notified.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from alarms.models import OPEN_STATUSES, Alarm
from core import label_matchers
from core.config_cache import kept, watch
from core.time_windows import holds

from .models import EscalationPolicy, EscalationStep, Inhibition, RoutingRule, Silence


def match_labels(alarm: Alarm) -> dict:
    """The labels matchers see: the alarm's own, plus what the alarm itself says (its source
    and severity always; its site, room and device when it has them)."""
    labels = {str(k): str(v) for k, v in (alarm.labels or {}).items()}
    labels.update(source=alarm.source, severity=alarm.severity)
    for name in ("site", "room", "device"):
        related = getattr(alarm, name)
        if related is not None:
            labels[name] = related.name
    return labels


@dataclass
class RuleCheck:
    """One rule's verdict, for the timeline and the admin's test page."""

    rule: RoutingRule
    matched: bool
    why: str


@dataclass
class Routing:
    policies: list = field(default_factory=list)
    severity: str = ""
    silenced_by: str = ""
    reason: str = ""
    checks: list[RuleCheck] = field(default_factory=list)


def rule_mismatch(rule: RoutingRule, alarm: Alarm, labels: dict, at: datetime) -> str:
    """Why the rule does not match the alarm, or "" when it does."""
    if rule.source and rule.source != alarm.source:
        return f"source is {alarm.source}, not {rule.source}"
    if rule.device_id and rule.device_id != alarm.device_id:
        return f"device is not {rule.device}"
    if rule.site_id and rule.site_id != alarm.site_id:
        return f"site is not {rule.site}"
    if rule.room_id and rule.room_id != alarm.room_id:
        return f"room is not {rule.room}"
    if not rule.severity_ok(labels["severity"]):
        return f"severity {labels['severity']} is below {rule.min_severity}"
    for matcher in rule.parsed_matchers:
        if not matcher.matches(labels):
            return f"{matcher} does not match ({matcher.name}={labels.get(matcher.name, '')!r})"
    inside = holds(at, rule.days, rule.start_time, rule.end_time, rule.time_zone)
    if inside == rule.outside_window:
        return "inside its time window" if inside else "outside its time window"
    return ""


@dataclass(frozen=True)
class Config:
    """What operators configure for routing, read once and kept while it does not change."""

    rules: list
    silences: list
    inhibitions: list
    global_default: EscalationPolicy | None


def config() -> Config:
    return kept("routing", _read)


def _read() -> Config:
    return Config(
        rules=list(RoutingRule.objects.filter(enabled=True).select_related("policy", "device")),
        # Those not over yet: whether one applies is decided at the alarm's time.
        silences=list(Silence.objects.filter(ends_at__gt=timezone.now())),
        inhibitions=list(Inhibition.objects.filter(enabled=True)),
        global_default=EscalationPolicy.objects.filter(is_default=True).first(),
    )


# What routing and the policies' step snapshots are read from.
watch(
    RoutingRule, Silence, Inhibition, EscalationPolicy, EscalationStep,
    through=(EscalationStep.persons.through, EscalationStep.channels.through,
             EscalationStep.schedules.through, EscalationStep.rotations.through),
)  # fmt: skip


def route(alarm: Alarm, at: datetime | None = None, policy=None) -> Routing:
    """Decide for a new alarm (not yet saved): policies, severity, silenced or not, and why.
    A source that names its own `policy` (a scheduled alarm) skips the rules."""
    at = at or timezone.now()
    result = Routing(severity=alarm.severity)
    reasons = []
    configured = config()
    if policy is not None:
        result.policies.append(policy)
        reasons.append(f"named by its {alarm.source}")
    decided = policy is not None
    labels = match_labels(alarm)
    for rule in configured.rules:
        if decided:
            result.checks.append(RuleCheck(rule, False, "an earlier rule decided"))
            continue
        mismatch = rule_mismatch(rule, alarm, labels, at)
        result.checks.append(RuleCheck(rule, not mismatch, mismatch or "matches"))
        if mismatch:
            continue
        reasons.append(f"rule {rule.name}")
        if rule.set_severity:  # the rules after this one see the new severity
            result.severity = labels["severity"] = rule.set_severity
        if rule.silence:
            result.silenced_by = f"routing rule {rule.name}"
        if rule.policy and rule.policy not in result.policies:
            result.policies.append(rule.policy)
        decided = not rule.continue_matching
    if not result.policies and not result.silenced_by:
        policy, why = default_policy(alarm, configured)
        if policy:
            result.policies.append(policy)
            reasons.append(why)
    result.silenced_by = result.silenced_by or silenced_now(alarm, labels, at, configured)
    result.reason = ", ".join(reasons) or "no rule and no default policy applies"
    return result


def default_policy(alarm: Alarm, configured: Config):
    device, site = alarm.device, alarm.site
    if device and device.default_policy_id:
        return device.default_policy, f"default policy of device {device.name}"
    if site and site.default_policy_id:
        return site.default_policy, f"default policy of site {site.name}"
    if configured.global_default:
        return configured.global_default, "the global default policy"
    return None, ""


def silenced_now(alarm: Alarm, labels: dict, at: datetime, configured: Config) -> str:
    """What silences the alarm at `at` (a silence, an inhibiting open alarm), or ""."""
    for silence in configured.silences:
        if silence.starts_at <= at < silence.ends_at and label_matchers.all_match(
            silence.parsed_matchers, labels
        ):
            return f"silence {silence.pk} ({silence.comment[:100]}) by {silence.created_by}"
    for inhibition in configured.inhibitions:
        source = inhibiting_alarm(inhibition, alarm, labels)
        if source is not None:
            return f"inhibition {inhibition.name}: open alarm {source.title!r}"
    return ""


def inhibiting_alarm(inhibition: Inhibition, alarm: Alarm, labels: dict) -> Alarm | None:
    """An open alarm that inhibits this one under the rule, if any."""
    if not label_matchers.all_match(inhibition.parsed_target, labels):
        return None
    candidates = Alarm.objects.filter(status__in=OPEN_STATUSES).exclude(pk=alarm.pk)
    for name in inhibition.equal_labels():
        if "__" in name:  # not a label name (the form refuses it): never a query lookup
            return None
        candidates = _sharing(candidates, name, labels.get(name, ""))
    for candidate in candidates.select_related("site", "room", "device")[:1000]:
        if label_matchers.all_match(inhibition.parsed_source, match_labels(candidate)):
            return candidate
    return None


_FIELD_OF_LABEL = {"site": "site__name", "room": "room__name", "device": "device__name"}


def _sharing(alarms, name: str, value: str):
    """Narrow the candidates in the database to those with the same value of this label."""
    if name in ("source", "severity"):
        return alarms.filter(**{name: value})
    if name in _FIELD_OF_LABEL:
        if not value:
            return alarms.filter(**{f"{name}__isnull": True})
        return alarms.filter(**{_FIELD_OF_LABEL[name]: value})
    return alarms.filter(**{f"labels__{name}": value})
