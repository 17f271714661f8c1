"""The answer to a reply ("Acknowledged #1 …", "Unknown code 7"), sent back through the
gateway the reply came by, to the number it came from."""

import logging
from datetime import timedelta

from django.utils import timezone

from notifications.messages import Message
from notifications.transports.base import Outgoing, TransportError

from .models import Reply
from .replies import e164

log = logging.getLogger(__name__)

ANSWER = "answer"  # the event an answer's Outgoing carries


def send(reply: Reply) -> bool:
    """Send the reply's answer once; record what the provider said. Return False when it
    failed in a way worth trying again (a timeout, a 5xx)."""
    if not reply.answer or reply.channel is None:
        return True
    transport = reply.channel.transport()
    out = Outgoing(alarm=None, event=ANSWER, message=Message(subject="", text=reply.answer),
                   address=e164(reply.sender) or reply.sender, person=reply.person)  # fmt: skip
    try:
        sent = transport.send(out)
    except TransportError as exc:
        status = f"failed: {transport.redact(exc.message)}"[:300]
        Reply.objects.filter(pk=reply.pk).update(answer_status=status)
        log.warning("the answer to reply %s was not sent: %s", reply.pk, status)
        return exc.permanent
    status = f"sent {timezone.now():%H:%M:%S}: {sent.status}"[:300]
    Reply.objects.filter(pk=reply.pk).update(answer_status=status)
    return True


def unanswered(older_than: float):
    """Replies handled at least `older_than` seconds ago whose answer was never tried (its
    worker died in between)."""
    since = timezone.now() - timedelta(seconds=older_than)
    return (
        Reply.objects.exclude(answer="")
        .filter(answer_status="", handled_at__lte=since)
        .select_related("channel", "person")
    )
