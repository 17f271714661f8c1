"""A reply end to end with a real Celery worker: the web stores it and queues it, the worker
acts on it and answers."""

import pytest

from alarms.models import Alarm
from conftest import wait_until
from responders.models import Reply

from .conftest import ALICE_PHONE, inbound_sms, sent_to, twilio_post

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_worker_handles_a_reply_and_answers_it(
    celery_worker, client, twilio_api, twilio, alice, page
):
    alarm = page([alice], sent=False)  # the worker may send it first
    wait_until(lambda: sent_to(twilio_api, ALICE_PHONE))

    assert twilio_post(client, inbound_sms(ALICE_PHONE, "1 A")).status_code == 200

    wait_until(lambda: Alarm.objects.get(pk=alarm.pk).status == "acknowledged")
    wait_until(lambda: sent_to(twilio_api, ALICE_PHONE)[-1].startswith("Acknowledged #1"))
    stored = Reply.objects.get()
    assert stored.handled_at and stored.answered_at
