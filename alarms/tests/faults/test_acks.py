"""A burst of ACKs racing the escalation step: each alarm is acknowledged by several people at
once (its first recipient's ACK link, a dispatcher over the API twice) just before, at and
just after its second step comes due."""

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.utils import timezone

from accounts.models import ApiToken
from alarms.models import Alarm

from .checks import acks_and_steps, settle, tally, wait_for
from .traffic import accepted, burst

pytestmark = pytest.mark.postgres

ALARMS = 20
# ACKs land from this long before the step is due to this long after it.
SPREAD_SECONDS = 0.3
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class AckLinkPress:
    """A person who opened the ACK link in their email and is about to press the button."""

    def __init__(self, url: str):
        self.url = url
        self.browser = requests.Session()
        page = self.browser.get(url, timeout=10)
        self.csrf = CSRF_FIELD.search(page.text).group(1)

    def __call__(self) -> int:
        data = {"csrfmiddlewaretoken": self.csrf}
        return self.browser.post(self.url, data=data, timeout=30).status_code


def _api_ack(base_url: str, token: str, alarm_id: str):
    def press() -> int:
        return requests.post(
            f"{base_url}/v1/alarms/{alarm_id}/acknowledge",
            headers={"Authorization": f"Bearer {token}"}, timeout=30,
        ).status_code  # fmt: skip

    return press


def _at(when: float, press):
    """Press at the given wall-clock time."""

    def timed():
        time.sleep(max(0.0, when - time.time()))
        return press()

    return timed


def test_a_burst_of_acks_racing_the_step_acknowledges_once_and_stops_escalation(
    stack, mail_sink, hook_sink, escalation, report, make_user
):
    _, dispatcher = ApiToken.issue(make_user("dispatcher", role="Dispatch"), "fault scenario")
    token = escalation(
        [(0, 1, [hook_sink.url("ack-1")]), (2, 1, [hook_sink.url("ack-2")]), (2, 1, [])]
    )
    stack.start()

    alarm_ids = accepted(burst(stack.url, token, ALARMS))
    first = "step0-0@example.org"
    wait_for(lambda: all((a, first) in mail_sink.ack_links for a in alarm_ids), timeout=20)
    links = {
        a: mail_sink.ack_links[(a, first)] for a in alarm_ids if (a, first) in mail_sink.ack_links
    }
    due = {
        str(pk): at
        for pk, at in Alarm.objects.filter(pk__in=alarm_ids).values_list("pk", "next_escalation_at")
    }
    presses = []
    for n, alarm_id in enumerate(links):
        step_due = (due[alarm_id] or timezone.now()).timestamp()  # None: its steps all ran
        when = step_due - SPREAD_SECONDS + 2 * SPREAD_SECONDS * n / ALARMS
        api = _api_ack(stack.url, dispatcher, alarm_id)
        presses += [_at(when, AckLinkPress(links[alarm_id])), _at(when, api), _at(when, api)]
    with ThreadPoolExecutor(len(presses)) as pool:
        answers = Counter(pool.map(lambda press: press(), presses))
    settle(alarm_ids, [mail_sink, hook_sink], timeout=30)

    result = tally(alarm_ids, [mail_sink, hook_sink], acknowledged=True)
    acks, late_steps, step_first = acks_and_steps(alarm_ids)
    still_escalating = Alarm.objects.filter(
        pk__in=alarm_ids, next_escalation_at__isnull=False
    ).count()
    result.counts.update({
        "ACK answers": ", ".join(f"{status} x{n}" for status, n in sorted(answers.items())),
        "acknowledged": len(acks),
        "step 2 ran first": step_first,
        "ACK first": len(alarm_ids) - step_first,
        "steps after an ACK": late_steps,
    })  # fmt: skip
    if len(links) < len(alarm_ids):
        result.problems.append(f"{len(alarm_ids) - len(links)} first emails never arrived")
    if set(answers) != {200}:
        result.problems.append(f"ACKs answered other than 200: {dict(answers)}")
    if len(acks) != len(alarm_ids) or set(acks.values()) != {1}:
        result.problems.append(f"not every alarm acknowledged exactly once: {dict(acks)}")
    if late_steps or still_escalating:
        result.problems.append(f"{late_steps} steps after an ACK, {still_escalating} still due")
    report("a burst of ACKs racing the escalation step", result)
