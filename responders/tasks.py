"""Celery tasks for replies: thin wrappers over `replies`, `answers` and `signal_receive`."""

from celery import shared_task

from core.task_queue import enqueue

from . import answers, replies, signal_receive

# A reply the worker has not handled this long after it arrived is taken by the sweep.
SWEEP_AFTER_SECONDS = 10.0
ANSWER_ATTEMPTS = 4


@shared_task(name="responders.tasks.handle")
def handle(reply_id: int) -> str | None:
    """A reply just stored: act on it, then answer."""
    reply = replies.handle(reply_id)
    if reply is not None:
        _answer(reply, attempt=1)
    return reply.outcome if reply else None


@shared_task(name="responders.tasks.answer")
def answer(reply_id: int, attempt: int) -> None:
    """The answer again, after it failed for a while (its action is done, once)."""
    reply = answers.Reply.objects.select_related("channel", "person").get(pk=reply_id)
    _answer(reply, attempt)


def _answer(reply, attempt: int) -> None:
    if not answers.send(reply) and attempt < ANSWER_ATTEMPTS:
        enqueue("responders.tasks.answer", reply.pk, attempt + 1, countdown=30 * attempt)


@shared_task(name="responders.tasks.sweep")
def sweep() -> int:
    """Beat: replies that arrived while no worker was there, and answers never tried; return
    how many replies it handled."""
    handled = 0
    for reply_id in replies.unhandled(SWEEP_AFTER_SECONDS).values_list("pk", flat=True)[:200]:
        if reply := replies.handle(reply_id):
            handled += 1
            answers.send(reply)
    for reply in answers.unanswered(older_than=60)[:200]:
        answers.send(reply)
    return handled


@shared_task(name="responders.tasks.receive_signal")
def receive_signal() -> int:
    """Beat: fetch what was sent to the Signal numbers, store it, act on it."""
    return signal_receive.poll()
