"""The Celery worker's broker consumer, made to survive a broker outage.

When Redis goes away while the worker holds unacknowledged tasks (always, for an alarm broker:
tasks are acknowledged late and countdowns wait in the worker), Celery tidies up the lost
connection and then closes it a second time; kombu's Redis channel, already without a client,
raises AttributeError there, which Celery does not expect, and the worker exits. Swallowing
that one error lets the consumer go on to reconnect, as it does for any other connection loss.
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
