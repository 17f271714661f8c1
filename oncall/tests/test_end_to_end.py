"""On call end to end, on real processes (a daphne web process, a Celery worker process, a real
SMTP server): a desk phone pressed at 02:00 on the ward's clock pages the night nurse; a swap
posted to the API makes the next press page the substitute; the timeline says who and why."""

import time
import zoneinfo
from datetime import datetime, timedelta

import pytest
import requests
from django.utils import timezone

from accounts.models import ApiToken
from alarms import lifecycle
from alarms.models import AlarmEvent
from alarms.tests.test_faults import _get, _web, _worker
from alarms.timeline import SYSTEM
from conftest import wait_until
from escalation.models import EscalationPolicy, EscalationStep

from .making import schedule

pytestmark = pytest.mark.django_db(transaction=True)


def zone_where_it_is_two_in_the_morning() -> str:
    """A fixed-offset zone whose wall clock now reads 02:xx (one exists at every moment)."""
    hour = datetime.now(zoneinfo.ZoneInfo("UTC")).hour
    offset = (2 - hour + 12) % 24 - 12  # -12 … +11
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"  # POSIX signs: Etc/GMT-2 is UTC+2


def mails_to(smtp_server, address):
    return [m for m in smtp_server.messages if address in m.rcpt_tos]


def test_a_press_at_two_pages_the_night_nurse_and_after_a_swap_the_substitute(
    smtp_server, process_env, start_process, make_person, make_device, make_user,
):  # fmt: skip
    tz = zone_where_it_is_two_in_the_morning()
    assert datetime.now(zoneinfo.ZoneInfo(tz)).hour == 2
    alice, bob, carol = make_person("Alice"), make_person("Bob"), make_person("Carol")
    ward = schedule(dict(person=alice, name="Day", start="06:00", end="22:00"),
                    dict(person=bob, name="Night", start="22:00", end="06:00"),
                    name="Ward 3", tz=tz)  # fmt: skip
    policy = EscalationPolicy.objects.create(name="Ward 3")
    EscalationStep.objects.create(policy=policy, order=0).schedules.set([ward])
    _, token = make_device("Bed 12 call button", kind="yealink", default_policy=policy)
    _, operator = ApiToken.issue(make_user("operator", role="Operators"), "e2e")

    env = process_env(EMAIL_HOST="127.0.0.1", EMAIL_PORT=smtp_server.port)
    _worker(start_process, env, "oncall-worker")
    base = _web(start_process, env)
    wait_until(lambda: _get(f"{base}/healthz") == 200, timeout=20)

    first = requests.get(f"{base}/v1/yealink/alarm", params={"token": token}, timeout=10).json()
    wait_until(lambda: mails_to(smtp_server, "bob@example.org"), timeout=20)
    [text] = AlarmEvent.objects.filter(alarm_id=first["alarm_id"], kind="on_call").values_list(
        "text", flat=True)  # fmt: skip
    assert text == "Step 1 of 1, round 1: On call in schedule 'Ward 3': Bob (Night, until 06:00)"

    # Carol covers Bob from now to 05:00, posted from her phone's app (here: the API).
    now = timezone.now()
    local = now.astimezone(zoneinfo.ZoneInfo(tz))
    until = local.replace(hour=5, minute=0, second=0, microsecond=0)
    swap = requests.post(f"{base}/v1/oncall/overrides", timeout=10, json={
        "schedule": ward.pk, "kind": "replace", "person": carol.pk, "replaces": bob.pk,
        "starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": until.isoformat(),
        "note": "swap with Bob"}, headers={"Authorization": f"Bearer {operator}"})  # fmt: skip
    assert swap.status_code == 201, swap.text
    lifecycle.resolve(first["alarm_id"], SYSTEM)  # a press after a resolve escalates again

    second = requests.get(f"{base}/v1/yealink/alarm", params={"token": token}, timeout=10).json()
    wait_until(lambda: mails_to(smtp_server, "carol@example.org"), timeout=20)
    timeline = list(AlarmEvent.objects.filter(alarm_id=second["alarm_id"], kind="on_call")
                    .order_by("at").values_list("text", flat=True))  # fmt: skip
    assert timeline[-1] == ("Step 1 of 1, round 1: On call in schedule 'Ward 3': Carol (covers "
                            "Bob (swap with Bob), until 05:00)")  # fmt: skip
    time.sleep(1)
    to_bob = [m.content.decode() for m in mails_to(smtp_server, "bob@example.org")]
    # Bob was not paged again; he was stood down once, when the first alarm was resolved.
    assert len([m for m in to_bob if "\nStand down: " not in m]) == 1
    assert len([m for m in to_bob if "\nStand down: " in m]) == 1
    answer = requests.get(f"{base}/v1/oncall", params={"schedule": "Ward 3"}, timeout=10,
                          headers={"Authorization": f"Bearer {operator}"}).json()  # fmt: skip
    assert [p["name"] for p in answer["on_call"][0]["people"]] == ["Carol"]
