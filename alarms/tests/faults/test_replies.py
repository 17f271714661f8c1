"""SMS replies on the production shape: pages go out through a stand-in speaking Twilio's
Messages API, and replies come back as Twilio sends them (its signed incoming-message webhook)
to the web process, while the worker is away or while a step comes due."""

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.utils import timezone
from twilio.request_validator import RequestValidator

from alarms.models import Alarm, AlarmEvent
from devices.models import Device
from notifications.models import Delivery, NotificationChannel
from notifications.tests import fake_provider
from notifications.tests.test_sms_signal import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    TWILIO_FROM,
    twilio_messages,
)
from responders.models import Reply

from .checks import Tally, acks_and_steps, wait_for
from .traffic import accepted, burst

pytestmark = [pytest.mark.postgres, pytest.mark.faults]

ALICE, BOB = "+4915123456789", "+4915198765432"
CODE = re.compile(r"Reply (\d+)a to acknowledge")
# Replies land from this long before the second step is due to this long after it.
SPREAD_SECONDS = 0.3


@pytest.fixture
def twilio():
    """Twilio's Messages API, keeping what it took."""
    server = fake_provider.start()
    server.created = []

    def messages(request, match):
        answer = twilio_messages(request, match)
        if answer.status == 201:
            server.created.append(answer.body)
        return answer

    server.route("POST", r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json", messages)
    yield server
    fake_provider.stop(server)


@pytest.fixture
def paging(twilio, make_person, make_policy, make_device):
    """A device token whose alarms page Alice by SMS, then (after `second` seconds) Bob."""

    def make(second: float) -> str:
        NotificationChannel.objects.create(kind="twilio", name="Twilio", config={
            "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from": TWILIO_FROM,
            "base_url": twilio.url})  # fmt: skip
        alice = make_person("Alice", phone=ALICE)
        bob = make_person("Bob", phone=BOB)
        policy = make_policy([(0, [alice], []), (second, [bob], [])], name="Reply scenario")
        policy.steps.update(methods=["sms"])
        _, token = make_device("Fault scenario device", kind=Device.Kind.GENERIC,
                               default_policy=policy, rate_limit_per_minute=1_000_000)  # fmt: skip
        return token

    return make


def sms_to(twilio, number: str) -> list[str]:
    return [m["body"] for m in twilio.created if m["to"] == number]


def codes_paged(twilio, number: str) -> Counter:
    """How often each reply code was paged to this number (a page carries its code)."""
    return Counter(int(m[1]) for body in sms_to(twilio, number) if (m := CODE.search(body)))


def reply(base_url: str, sender: str, body: str, sid: str) -> int:
    """Twilio's incoming-message webhook, signed with the account's token (by Twilio's own
    library) over the URL it was configured with."""
    url = base_url + "/v1/replies/twilio"
    params = {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "From": sender, "To": TWILIO_FROM,
              "Body": body, "NumMedia": "0"}  # fmt: skip
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return requests.post(url, data=params, headers={"X-Twilio-Signature": signature},
                         timeout=30).status_code  # fmt: skip


def codes_of(alarm_ids) -> dict[str, int]:
    """Each alarm's reply code on Alice's phone, from the page she got."""
    found = {}
    for row in Delivery.objects.filter(alarm_id__in=alarm_ids, address=ALICE, event="notify"):
        if match := CODE.search(row.message):
            found[str(row.alarm_id)] = int(match[1])
    return found


def test_replies_while_the_worker_is_down_are_handled_once_when_it_is_back(
    stack, twilio, paging, report
):
    token = paging(second=120)
    stack.start()
    alarm_ids = accepted(burst(stack.url, token, 5))
    wait_for(lambda: len(codes_of(alarm_ids)) == 5, timeout=20)
    codes = codes_of(alarm_ids)
    worker = next(p for p in stack.processes if p.name == "worker")
    worker.stop()

    answers = Counter(
        reply(stack.url, ALICE, f"{code}a", f"SM{code:032x}") for code in codes.values()
    )
    answers[reply(stack.url, ALICE, "1a", f"SM{1:032x}")] += 1  # Twilio delivering one again
    time.sleep(3)  # beat sweeps meanwhile, into a queue nobody reads
    waiting = Reply.objects.filter(handled_at=None).count()
    still_triggered = Alarm.objects.filter(pk__in=alarm_ids, status="triggered").count()
    stack.wait_ready(stack.worker("worker-again"))
    wait_for(lambda: not Reply.objects.filter(handled_at=None).exists(), timeout=30)
    wait_for(lambda: len([b for b in sms_to(twilio, ALICE) if b.startswith("Acknowledged")]) >= 5,
             timeout=20)  # fmt: skip
    time.sleep(2)  # anything sent twice would be by now

    acks = Counter(AlarmEvent.objects.filter(alarm_id__in=alarm_ids, kind="acknowledged")
                   .values_list("alarm_id", flat=True))  # fmt: skip
    replies = Counter(AlarmEvent.objects.filter(alarm_id__in=alarm_ids, kind="reply")
                      .values_list("alarm_id", flat=True))  # fmt: skip
    confirmations = Counter(b for b in sms_to(twilio, ALICE) if b.startswith("Acknowledged"))
    result = Tally({
        "accepted": len(alarm_ids), "replies sent": sum(answers.values()),
        "answered 200": answers[200], "waiting while the worker was down": waiting,
        "triggered meanwhile": still_triggered, "stored": Reply.objects.count(),
        "acknowledged": len(acks), "confirmations": sum(confirmations.values()),
    })  # fmt: skip
    if set(answers) != {200}:
        result.problems.append(f"replies answered other than 200: {dict(answers)}")
    if waiting != 5 or still_triggered != 5:
        result.problems.append("replies were handled while no worker ran")
    if Reply.objects.count() != 5:
        result.problems.append("a reply Twilio delivered twice was stored twice")
    if set(acks.values()) != {1} or len(acks) != 5 or set(replies.values()) != {1}:
        result.problems.append(f"not each alarm acknowledged once by one reply: {dict(acks)}")
    if len(confirmations) != 5 or set(confirmations.values()) != {1}:
        result.problems.append(f"confirmations not one each: {dict(confirmations)}")
    report("a reply arriving while the worker is down", result)


def test_a_reply_racing_the_step_never_double_pages(stack, twilio, paging, report):
    token = paging(second=2)
    # Bob's pages and stand-downs, up to ten within seconds, would pass the SMS limit per
    # phone (5 in 15 minutes): the rest would be held for a bundle later. The race is what
    # this scenario is about, not the limit.
    stack.configure(THROTTLE_SMS="")
    stack.start()
    alarm_ids = accepted(burst(stack.url, token, 10))
    wait_for(lambda: len(codes_of(alarm_ids)) == 10, timeout=20)
    codes = codes_of(alarm_ids)
    due = dict(Alarm.objects.filter(pk__in=alarm_ids).values_list("pk", "next_escalation_at"))

    def press(n_alarm):
        n, alarm_id = n_alarm
        step_due = (due[alarm_id] or timezone.now()).timestamp()
        time.sleep(max(0.0, step_due - SPREAD_SECONDS + 2 * SPREAD_SECONDS * n / 10 - time.time()))
        return reply(stack.url, ALICE, f"{codes[str(alarm_id)]}a", f"SM{n + 100:032x}")

    with ThreadPoolExecutor(10) as pool:
        answers = Counter(pool.map(press, enumerate(due)))
    wait_for(lambda: not Reply.objects.filter(handled_at=None).exists(), timeout=30)
    wait_for(lambda: not Delivery.objects.filter(alarm_id__in=alarm_ids,
                                                  status__in=["pending", "sending"]).exists(),
             timeout=30)  # fmt: skip
    time.sleep(2)

    acks, late_steps, step_first = acks_and_steps(alarm_ids)
    pages = {number: codes_paged(twilio, number) for number in (ALICE, BOB)}
    twice = {n: {c: k for c, k in counted.items() if k > 1} for n, counted in pages.items()}
    bob_paged = sum(pages[BOB].values())
    stood_down = [b for b in sms_to(twilio, BOB) if b.startswith("Stand down:")]
    result = Tally({
        "accepted": len(alarm_ids), "replies answered 200": answers[200],
        "acknowledged": len(acks), "step 2 ran first": step_first,
        "reply first": len(alarm_ids) - step_first, "Bob paged": bob_paged,
        "Bob stood down": len(stood_down), "steps after a reply": late_steps,
        "paged twice": sum(len(t) for t in twice.values()),
    })  # fmt: skip
    if set(answers) != {200}:
        result.problems.append(f"replies answered other than 200: {dict(answers)}")
    if len(acks) != len(alarm_ids) or set(acks.values()) != {1}:
        result.problems.append(f"not every alarm acknowledged exactly once: {dict(acks)}")
    if late_steps or any(twice.values()):
        result.problems.append(f"{late_steps} steps after a reply; paged twice: {twice}")
    if bob_paged != step_first or len(stood_down) != bob_paged:
        result.problems.append("Bob was paged for other alarms than step 2 ran for, or not "
                               "stood down once for each")  # fmt: skip
    report("a reply racing the escalation step", result)
