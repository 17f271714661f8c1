"""What happens on a call, whichever provider carries it: the script read, what each key does,
and the call's outcome recorded on its delivery and the alarm's timeline.

Only a key acknowledges: 4 acknowledges, 5 claims ("on my way"; the minutes may follow, ended
by #), 0 repeats. A call answered without a key, a voicemail, busy or no answer is recorded
and changes nothing: escalation goes on.
"""

import logging

from django.db import transaction

from alarms import lifecycle
from alarms.models import AlarmEvent
from alarms.timeline import Actor, record
from core.tokens import unsigned
from notifications.messages import build_message
from notifications.models import Delivery
from notifications.transports.voice import CALL_PURPOSE

log = logging.getLogger(__name__)

Outcome = Delivery.CallOutcome
ACKNOWLEDGE_KEY, CLAIM_KEY, REPEAT_KEY = "4", "5", "0"
# How many times a call reads its script when no key is pressed.
READINGS = 3

SAID = {
    "acknowledged": "Acknowledged. Thank you. Goodbye.",
    "already": "This alarm was already acknowledged. Goodbye.",
    "closed": "This alarm is already closed. Goodbye.",
    "claimed": "Thank you. You are on your way. Goodbye.",
    "eta": "In how many minutes will you be there? Enter the minutes, then the hash key.",
    "unknown_key": "That key does nothing.",
    "test": "This is a test call from the alarm broker. No key is needed. Goodbye.",
}


def delivery_of(token: str) -> Delivery | None:
    """The call a callback's signed reference names."""
    value = unsigned(token or "", CALL_PURPOSE)
    return call_delivery(int(value)) if value and value.isdigit() else None


def call_delivery(delivery_id: int) -> Delivery | None:
    """A call's delivery, with what its script and its outcome need."""
    return (
        Delivery.objects.select_related("alarm", "alarm__site", "alarm__room", "alarm__person")
        .select_related("alarm__device", "person", "channel")
        .filter(pk=delivery_id, method="voice")
        .first()
    )


def script(delivery: Delivery) -> str:
    """What the call says: the alarm and the keys."""
    transport = delivery.channel.transport()
    alarm = delivery.alarm
    message = build_message(alarm, transport, step=delivery.step, round_=delivery.round,
                            cycle=delivery.cycle, channel=delivery.channel)  # fmt: skip
    return " ".join(message.text.split())


def _actor(delivery: Delivery, key: str) -> Actor:
    name = delivery.person.name if delivery.person else "someone"
    return Actor(f"{name} by phone call, key {key}", person=delivery.person)


def press(delivery: Delivery, key: str, eta_minutes: int | None = None) -> str:
    """A key pressed on the call (a claim with its minutes, once entered); return what the
    call says next, by its name in SAID ('repeat' to read the script again)."""
    alarm = delivery.alarm
    try:
        if key == ACKNOWLEDGE_KEY:
            outcome = lifecycle.acknowledge(alarm.pk, _actor(delivery, key), cycle=delivery.cycle)
            ended(delivery, Outcome.ACKNOWLEDGED)
            return "acknowledged" if outcome.changed else "already"
        if key == CLAIM_KEY:
            if eta_minutes is not None and not 0 < eta_minutes <= lifecycle.MAX_ETA_MINUTES:
                eta_minutes = None
            lifecycle.claim(alarm.pk, _actor(delivery, key), eta_minutes, cycle=delivery.cycle)
            ended(delivery, Outcome.CLAIMED)
            return "claimed"
    except lifecycle.AlarmClosed:
        return "closed"
    if key == REPEAT_KEY:
        return "repeat"
    return "unknown_key"


def ended(delivery: Delivery, outcome: str, detail: str = "") -> bool:
    """Record what came of the call, once: a key's outcome stands over what the provider says
    when the call then ends. Return whether this was recorded."""
    with transaction.atomic():
        row = Delivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if row is None or row.outcome:
            return False
        row.outcome = outcome
        row.save(update_fields=["outcome", "updated_at"])
        who = delivery.person.name if delivery.person else delivery.address
        label = Outcome(outcome).label
        text = f"Call to {who} ({delivery.address}): {label}" + (f" ({detail})" if detail else "")
        record(delivery.alarm, AlarmEvent.Kind.CALL, text, delivery_id=delivery.pk,
               outcome=outcome)  # fmt: skip
    delivery.outcome = outcome
    log.info("call %s: %s", delivery.pk, outcome)
    return True
