"""Celery tasks for replies: thin wrappers over `answers` and `signal_receive`."""

from celery import shared_task

from . import answers, replies, signal_receive

# A reply the worker has not handled this long after it arrived is taken by the sweep.
SWEEP_AFTER_SECONDS = 10.0


@shared_task(name="responders.tasks.handle")
def handle(reply_id: int) -> str | None:
    """A reply just stored: act on it, then answer."""
    reply = answers.handle_and_answer(reply_id)
    return reply.outcome if reply else None


@shared_task(name="responders.tasks.sweep")
def sweep() -> int:
    """Beat: replies that arrived while no worker was there, and answers not sent yet;
    return how many replies it handled."""
    ids = replies.unhandled(SWEEP_AFTER_SECONDS).values_list("pk", flat=True)[:200]
    handled = sum(answers.handle_and_answer(reply_id) is not None for reply_id in ids)
    for reply in answers.due()[:200]:
        answers.send(reply)
    return handled


@shared_task(name="responders.tasks.receive_signal")
def receive_signal() -> int:
    """Beat: fetch what was sent to the Signal numbers, store it, act on it."""
    return signal_receive.poll()
