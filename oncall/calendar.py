"""Calendars of shifts (iCalendar, RFC 5545): a person's, or a schedule's whole rota, for the
next 8 weeks, read from the same stretches as every other view of who is on call."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event

from .models import CalendarFeed, Rotation, Schedule
from .plans import plans
from .who import stretches

WEEKS = 8
HOST = "alarm-broker"


def feed(calendar: CalendarFeed, now: datetime | None = None) -> bytes:
    now = now or timezone.now()
    start, end = now - timedelta(days=1), now + timedelta(weeks=WEEKS)
    if calendar.schedule_id:
        name = f"On call: {calendar.schedule.name}"
        events = _shifts("schedule", calendar.schedule_id, start, end, person_id=None)
    else:
        name = f"On call: {calendar.person.name}"
        events = person_shifts(calendar.person_id, start, end)
    return _calendar(name, events, now)


def person_shifts(person_id: int, start, end) -> list[dict]:
    """The person's shifts in every schedule and rotation between start and end, in order."""
    events = []
    for kind, pk in subjects():
        events += _shifts(kind, pk, start, end, person_id=person_id)
    return sorted(events, key=lambda event: event["starts"])


def subjects() -> list[tuple[str, int]]:
    """Every schedule, and the rotations no schedule uses (steps may page them directly): a
    rotation inside a schedule is already in that schedule's shifts."""
    found = [("schedule", pk) for pk in Schedule.objects.values_list("pk", flat=True)]
    alone = Rotation.objects.filter(rules=None).values_list("pk", flat=True)
    return found + [("rotation", pk) for pk in alone]


def _shifts(kind: str, pk: int, start, end, person_id: int | None) -> list[dict]:
    """Each person's unbroken time on call in the subject, as one event each."""
    subject = plans()[(kind, pk)]
    open_: dict = {}  # person id -> the event being extended
    events = []
    for stretch in stretches(kind, pk, start, end):
        here = {c.person_id: c for c in stretch.people if person_id in (None, c.person_id)}
        for pk_, event in list(open_.items()):
            if pk_ not in here or event["ends"] != stretch.starts_at:
                del open_[pk_]
        for pk_, chosen in here.items():
            if pk_ in open_:
                open_[pk_]["ends"] = stretch.ends_at
                if chosen.why and chosen.why not in open_[pk_]["why"]:
                    open_[pk_]["why"].append(chosen.why)
            else:
                open_[pk_] = {
                    "kind": kind, "subject": subject.name, "subject_id": pk, "person_id": pk_,
                    "person": chosen.name, "starts": stretch.starts_at, "ends": stretch.ends_at,
                    "why": [chosen.why] if chosen.why else [],
                }  # fmt: skip
                events.append(open_[pk_])
    return events


def _calendar(name: str, events: list[dict], now: datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", f"-//{HOST}//on call//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    calendar.add("x-published-ttl", "PT1H")  # Outlook and Google: fetch again hourly
    calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    for shift in events:
        event = Event()
        event.add("uid", f"{shift['kind']}-{shift['subject_id']}-{shift['person_id']}-"
                         f"{shift['starts']:%Y%m%dT%H%M%SZ}@{HOST}")  # fmt: skip
        event.add("dtstamp", now)
        event.add("dtstart", shift["starts"])
        event.add("dtend", shift["ends"])
        event.add("summary", f"On call: {shift['subject']} ({shift['person']})")
        event.add("description", "; ".join(shift["why"]) or f"On call in {shift['subject']}")
        event.add("transp", "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical()


def url(token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/calendar/{token}.ics"
