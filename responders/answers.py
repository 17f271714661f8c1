"""The answer to a reply ("Acknowledged #1 …", "Unknown code 7"), sent back through the
gateway the reply came by, to the number it came from; tried again by the sweep when the
provider failed, a few times."""

import logging
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from notifications.delivery.sending import call_transport
from notifications.messages import Message
from notifications.transports.base import Outgoing, TransportError

from . import replies
from .models import Reply

log = logging.getLogger(__name__)

ANSWER = "answer"  # the event an answer's Outgoing carries
ATTEMPTS = 4
RETRY_AFTER = timedelta(seconds=30)


def handle_and_answer(reply_id: int) -> Reply | None:
    """Act on a stored reply once, then answer it; None when it was not this caller's to
    handle. What fails is logged: one reply costs no other (the sweep tries it again)."""
    try:
        reply = replies.handle(reply_id)
        if reply is not None:
            send(reply)
        return reply
    except Exception:  # noqa: BLE001 (logged; it stays unhandled for the sweep)
        log.exception("reply %s could not be handled", reply_id)
        return None


def send(reply: Reply) -> None:
    """Try the reply's answer once and record what the provider said: sent, or why not (a
    permanent refusal is not tried again)."""
    if not reply.answer or reply.channel is None or reply.answered_at:
        return
    transport = reply.channel.transport()
    out = Outgoing(alarm=None, event=ANSWER, message=Message(subject="", text=reply.answer),
                   address=replies.e164(reply.sender) or reply.sender,
                   person=reply.person)  # fmt: skip
    now = timezone.now()
    tried = Reply.objects.filter(pk=reply.pk)
    try:
        sent = call_transport(transport, out, reply.channel.kind)
    except TransportError as exc:
        attempts = ATTEMPTS if exc.permanent else F("answer_attempts") + 1
        status = f"failed: {transport.redact(exc.message)}"[:300]
        tried.update(answer_attempts=attempts, answer_tried_at=now, answer_status=status)
        log.warning("the answer to reply %s was not sent: %s", reply.pk, status)
        return
    tried.update(answer_attempts=F("answer_attempts") + 1, answer_tried_at=now,
                 answered_at=now, answer_status=sent.status[:300])  # fmt: skip


def due():
    """Answers not sent yet: never tried (their worker died in between), or failed a while
    ago and not given up on."""
    since = timezone.now() - RETRY_AFTER
    return (
        Reply.objects.exclude(answer="")
        .exclude(handled_at=None)
        .filter(answered_at=None, answer_attempts__lt=ATTEMPTS, handled_at__lte=since)
        .filter(Q(answer_tried_at=None) | Q(answer_tried_at__lte=since))
        .select_related("channel", "person")
    )
