"""Writing an alarm's timeline: who did what, from where."""

from dataclasses import dataclass

from core.deferred_writes import Together
from core.storable_text import explained

from .models import AlarmEvent


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a person (ACK link), a user (board, admin), a device, or the system."""

    name: str
    person: object = None
    user: object = None
    ip: str | None = None


SYSTEM = Actor("system")


def user_actor(user, ip: str | None = None) -> Actor:
    """A logged-in user (board, admin session) as the actor of a change."""
    return Actor(
        user.get_full_name() or user.get_username(),
        user=user,
        person=getattr(user, "person", None),
        ip=ip,
    )


def event(alarm, kind: str, text: str = "", actor: Actor = SYSTEM, **detail) -> AlarmEvent:
    """A timeline entry, not yet saved."""
    return AlarmEvent(
        alarm=alarm,
        kind=kind,
        text=text,
        actor=actor.name,
        person=actor.person,
        user=actor.user,
        source_ip=actor.ip,
        detail=detail,
    )


def record(alarm, kind: str, text: str = "", actor: Actor = SYSTEM, **detail) -> AlarmEvent:
    entry = event(alarm, kind, text, actor, **detail)
    record_all(entry)
    return entry


def record_all(*entries: AlarmEvent) -> None:
    """Save several entries in one statement, in this order (inside `written_together`, with
    the block's others as it ends)."""
    if not _entries.add(*entries):
        AlarmEvent.objects.bulk_create(entries)


_entries = Together(AlarmEvent.objects.bulk_create)

# Entries recorded inside are inserted in one statement as the block ends, in the transaction
# around it; nothing inside may read the timeline it records.
written_together = _entries.block


def note_made_storable(outcome, changed: list[str], actor: Actor) -> None:
    """Say on the alarm's timeline which of the fields sent were made storable, when the alarm
    took what was sent (a lifecycle outcome that changed it; a repeat stores none of it)."""
    if changed and outcome.changed:
        text = explained(changed)
        record(outcome.alarm, AlarmEvent.Kind.UPDATED, text, actor, made_storable=changed)
