"""What each process keeps of the configuration: a raise from a known device reads none of it,
a change is seen at once (here) and by every process once it commits, and nothing an
attacker sends is kept."""

import json
import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import raise_over_api
from core.config_cache import VERSION_KEY, kept, one_version
from core.redis_client import client as redis_client
from core.tokens import new_token
from devices.models import Device
from escalation.models import EscalationStep

pytestmark = pytest.mark.django_db(transaction=True)


def raise_status(client, token: str, key: str) -> int:
    response = client.post(
        "/v1/alarms/raise", json.dumps({"dedup_key": key, "title": "Door forced"}),
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip
    return response.status_code


@pytest.fixture
def device_and_token(make_device, make_policy, alice):
    return make_device(
        "Door sensor", kind="generic", default_policy=make_policy([(60, [alice], [])])
    )


def test_a_raise_from_a_device_used_before_reads_no_configuration(client, device_and_token):
    _, token = device_and_token
    raise_over_api(client, token, dedup_key="first", title="Door forced")

    with CaptureQueriesContext(connection) as queries:
        raise_over_api(client, token, dedup_key="second", title="Door forced")

    configuration = re.compile(r'(FROM|JOIN) "(devices|escalation|accounts)_')
    assert [q["sql"] for q in queries if configuration.search(q["sql"])] == []
    assert any('INSERT INTO "alarms_alarm"' in q["sql"] for q in queries)


def test_a_token_rotated_without_grace_stops_working_at_once(client, device_and_token):
    device, old = device_and_token
    assert raise_status(client, old, "before") == 201

    new = device.rotate_token()
    device.save(update_fields=Device.TOKEN_FIELDS)

    assert raise_status(client, old, "after") == 401
    assert raise_status(client, new, "after") == 201


def test_a_disabled_device_is_refused_at_once(client, device_and_token):
    device, token = device_and_token
    assert raise_status(client, token, "before") == 201

    device.enabled = False
    device.save()

    assert raise_status(client, token, "after") == 401


def test_other_processes_are_told_of_a_change_once_it_is_committed(make_policy, alice):
    policy = make_policy([(0, [alice], [])])
    step = EscalationStep.objects.get(policy=policy)
    before = redis_client().get(VERSION_KEY)

    with transaction.atomic():
        step.delay_seconds = 30
        step.save()
        # Told now, another process could read the old step and keep it as the new one.
        assert redis_client().get(VERSION_KEY) == before

    assert redis_client().get(VERSION_KEY) != before


def test_unknown_tokens_are_looked_up_and_never_kept(client, device_and_token):
    statuses = {raise_status(client, new_token(), f"guess-{n}") for n in range(50)}

    assert statuses == {401}
    assert kept("devices by token", dict) == {}


def test_work_done_together_sees_one_configuration():
    reads = []

    def read():
        reads.append(len(reads) + 1)
        return reads[-1]

    with one_version():
        assert kept("figure", read) == 1
        redis_client().incr(VERSION_KEY)  # another process changed the configuration meanwhile
        assert kept("figure", read) == 1

    assert kept("figure", read) == 2  # the next piece of work sees the change
