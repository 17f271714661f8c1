"""The Celery worker's broker consumer, made to survive a broker outage.

When Redis goes away while the worker holds unacknowledged tasks (always, for an alarm broker:
tasks are acknowledged late and countdowns wait in the worker), Celery tidies up the lost
connection and then closes it a second time; kombu's Redis channel, already without a client,
raises AttributeError there, which Celery does not expect, and the worker exits. Swallowing
that one error lets the consumer go on to reconnect, as it does for any other connection loss.

A task that ends just after the loss has its acknowledgement run once the consumer has
reconnected, on the old channel, which has no client either: the same AttributeError, the same
exit. That task is not lost: kombu gave its message back to the queue as the connection was
lost (and if Redis came back empty, the sweeper finds its work in the database), and running a
task again does nothing twice.
"""

import logging

from celery.worker.consumer import Consumer as CeleryConsumer

log = logging.getLogger(__name__)


class Consumer(CeleryConsumer):
    def on_connection_error_after_connected(self, exc):
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            log.warning("closing the lost broker connection failed (%r); reconnecting", error)

    def call_soon_ack(self, p, *args, **kwargs):
        def acknowledge():
            try:
                p(*args, **kwargs)
            except AttributeError as error:
                log.warning("acknowledging a task of the lost broker connection failed (%r)", error)

        return super().call_soon_ack(acknowledge)
