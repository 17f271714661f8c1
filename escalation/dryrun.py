"""What the routing test page predicts for an alarm: its routing and silences, what the storm
guard would do with it, and whom each step of its policies would reach. Nothing is stored, sent
or counted: the storm guard's counts are read, never added to."""

from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.utils import timezone

from alarms import storms
from alarms.engine import snapshot
from alarms.models import Alarm
from devices.models import Person
from notifications.models import NotificationChannel

from . import routing


@dataclass
class StormVerdict:
    text: str
    folds: bool = False  # then the alarm notifies nobody on its own


@dataclass
class DryRun:
    routed: routing.Routing
    storm: StormVerdict
    policies: list[dict]  # {"policy", "steps": [{"delay_seconds", "reaches"}]}


def dry_run(alarm: Alarm, at: datetime, replayed: Alarm | None = None) -> DryRun:
    """The prediction for an unsaved alarm raised at `at`; `replayed` is the stored alarm it
    was made from, whose own record says what the storm guard did with it."""
    routed = routing.route(alarm, at)
    if replayed is not None:
        storm = replayed_storm_verdict(replayed)
    else:
        storm = storm_verdict(alarm, routed, at)
    return DryRun(routed, storm, described_policies(routed.policies))


def replayed_storm_verdict(alarm: Alarm) -> StormVerdict:
    if alarm.source == storms.SOURCE:
        return StormVerdict("never folds a storm alarm")
    if alarm.folded_into_id:
        return StormVerdict(f"folded it when it was raised: {alarm.silenced_by}", folds=True)
    return StormVerdict("did not fold it when it was raised")


def storm_verdict(alarm: Alarm, routed: routing.Routing, at: datetime) -> StormVerdict:
    """What the guard would do with the alarm raised at `at`, from its counts as they are now."""
    if routed.silenced_by or not routed.policies:
        return StormVerdict("not asked: the alarm notifies nobody anyway")
    if not storms.may_fold(alarm):
        return StormVerdict("never folds a person's press: it pages on its own at once")
    if not storms.guard_on():
        return StormVerdict("off (no threshold or no window is set)")
    window = settings.STORM_WINDOW_SECONDS
    if abs((at - timezone.now()).total_seconds()) > window:
        return StormVerdict(
            f"not known at that time: it counts the last {window} s to {2 * window} s only "
            "(leave the time empty to see what it would do now)"
        )
    try:
        from_source, from_all = storms.counted_starts(alarm.source)
    except redis.RedisError:
        return StormVerdict("blind (Redis cannot be read): the alarm would notify on its own")
    counted = (
        f"{from_source} alarm starts from source {alarm.source} and {from_all} from all sources "
        f"in its window; {_limits()}"
    )
    scope = storms.scope_over(alarm.source, from_source + 1, from_all + 1)
    if scope:
        return StormVerdict(
            f"would fold it into the storm alarm for {scope} ({counted}): it would notify "
            "nobody on its own, the storm alarm's digest reaches its policy's targets once",
            folds=True,
        )
    return StormVerdict(f"would let it notify on its own ({counted})")


def _limits() -> str:
    per_source, overall = settings.STORM_SOURCE_THRESHOLD, settings.STORM_GLOBAL_THRESHOLD
    return (
        f"at most {per_source or 'any number'} from one source "
        f"and {overall or 'any number'} from all notify on their own"
    )


def described_policies(policies) -> list[dict]:
    """Each policy's steps as the engine would snapshot them, each saying whom it reaches."""
    described = []
    for policy in policies:
        steps = snapshot(policy)
        persons = Person.objects.in_bulk({i for s in steps for i in s["person_ids"]})
        channels = NotificationChannel.objects.in_bulk({i for s in steps for i in s["channel_ids"]})
        described.append({
            "policy": policy,
            "steps": [{"delay_seconds": step["delay_seconds"],
                       "reaches": step_reach(step, persons, channels)} for step in steps],
        })  # fmt: skip
    return described


def step_reach(step: dict, persons: dict, channels: dict) -> str:
    """Who and what a step reaches: its people by their methods, its channels by name."""
    people = [_person(persons[i]) for i in step["person_ids"] if i in persons]
    posts = [_channel(channels[i]) for i in step["channel_ids"] if i in channels]
    parts = []
    if people:
        parts.append(f"{', '.join(people)} by {', '.join(step['methods']) or 'no method'}")
    if posts:
        parts.append(f"post to {', '.join(posts)}")
    return "; ".join(parts) or "nobody"


def _person(person: Person) -> str:
    return person.name if person.active else f"{person.name} (inactive: not notified)"


def _channel(channel: NotificationChannel) -> str:
    return channel.name if channel.enabled else f"{channel.name} (disabled: not posted to)"
