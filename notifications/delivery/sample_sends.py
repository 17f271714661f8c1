"""The admin's test messages: the sample alarm sent now to a channel, or to a person by each
method, answered with what each provider said. Nothing is stored."""

from ..messages import build_message, sample_alarm
from ..models import NotificationChannel
from ..transports import PERSON_METHODS
from ..transports.base import RESOLVED, TEST, Outgoing, TransportError
from .sending import call_transport, stored, transport_for
from .targets import gateway_for


def send_test(*, channel: NotificationChannel | None = None, person=None):
    """Send a test message now and return [(what, answer, ok)].

    A channel that opens something (a ticket, an incident, an upstream alarm) is sent the
    sample alarm's resolve right after, so the test leaves nothing open.
    """
    alarm = sample_alarm()
    if channel is not None:
        results = []
        transport = channel.transport()
        sent = _test_one(
            results, channel.name, transport, alarm, transport.address_for(None), channel
        )
        if sent and transport.test_resolves:
            alarm.status, alarm.resolved_by = "resolved", "test"
            _test_one(results, f"{channel.name} (resolve)", transport, alarm,
                      transport.address_for(None), channel, RESOLVED, sent.ref or {})  # fmt: skip
        return results
    results = []
    for method, label in PERSON_METHODS.items():
        gateway = gateway_for(method)
        if gateway is None and method != "email":
            results.append((label, f"no enabled {label} channel to send through", False))
            continue
        transport = transport_for(gateway)
        address = transport.address_for(person)
        if not address:
            results.append((label, f"{person.name} has no {label} address", False))
            continue
        _test_one(
            results, f"{label} to {address}", transport, alarm, address, gateway, person=person
        )
    return results


def _test_one(results, what, transport, alarm, address, channel, event=TEST, ref=None, person=None):
    message = build_message(alarm, transport, event=event, channel=channel)
    kind = channel.kind if channel else "email"
    try:
        out = Outgoing(alarm, event, message, address, person, ref or {})
        sent = call_transport(transport, out, kind)
    except TransportError as exc:
        results.append((what, stored(transport, exc.message), False))
        return None
    answer = " ".join(filter(None, [sent.status, sent.message_id and f"id {sent.message_id}",
                                    sent.response[:200]]))  # fmt: skip
    results.append((what, stored(transport, answer), True))
    return sent
