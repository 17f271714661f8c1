"""The worker's consumer outlives a broker outage: a task that ends just after the connection
was lost is acknowledged on the lost channel once the consumer has reconnected, which kombu
answers with AttributeError; the worker logs it and goes on."""

import logging

from django.conf import settings
from kombu import Connection

from alarmsite.celery import app
from alarmsite.worker_consumer import Consumer


def message_of_a_lost_connection():
    """A real message taken from Redis, its channel then closed as a lost connection leaves it."""
    connection = Connection(settings.CELERY_BROKER_URL)
    queue = connection.SimpleQueue("alarmbroker-test-lost-channel")
    queue.clear()
    queue.put({"task": "a task"})
    message = queue.get(timeout=5)
    message.channel.close()
    message.channel._disconnect_pools()  # as kombu does when the connection is lost
    return message


class Hub:
    """The consumer's event loop, as far as acknowledgements go: it runs them later."""

    def __init__(self):
        self.soon = []

    def call_soon(self, callback):
        self.soon.append(callback)


def test_acknowledging_a_task_of_the_lost_connection_is_logged_not_the_end_of_the_worker(caplog):
    message = message_of_a_lost_connection()
    consumer = Consumer.__new__(Consumer)  # only its acknowledgement path is used
    consumer.app, consumer.hub = app, Hub()

    consumer.call_soon_ack(message.ack_log_error, logging.getLogger("test"), ())
    with caplog.at_level(logging.WARNING, logger="alarmsite.worker_consumer"):
        for callback in consumer.hub.soon:
            callback()  # raised AttributeError, which ended the worker, before

    assert "acknowledging a task of the lost broker connection failed" in caplog.text
