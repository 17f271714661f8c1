"""The routing test page ("Test routing", and the replay link on an alarm's page): what the
storm guard would do with the alarm, and whom each step reaches; nothing counted or sent."""

import re

import pytest
from django.contrib.auth.models import User

from alarms import lifecycle
from alarms.models import Alarm
from alarms.timeline import SYSTEM
from conftest import REAL_REDIS
from escalation.models import RoutingRule
from notifications.models import Delivery, NotificationChannel

pytestmark = pytest.mark.django_db

THRESHOLD = 3
PAGE = "/admin/escalation/routingrule/test/"


@pytest.fixture
def storm_guard(settings):
    for key in REAL_REDIS.scan_iter("storm:*"):  # counts of earlier tests and runs
        REAL_REDIS.delete(key)
    settings.STORM_SOURCE_THRESHOLD, settings.STORM_GLOBAL_THRESHOLD = THRESHOLD, 0
    settings.STORM_WINDOW_SECONDS, settings.STORM_DIGEST_SECONDS = 60, 30


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


@pytest.fixture
def paging_alice(make_policy, make_person):
    return make_policy([(0, [make_person("Alice")], [])], name="Ward", is_default=True)


def raise_many(count: int, source="api") -> list[Alarm]:
    return [
        lifecycle.raise_alarm(source=source, dedup_key=f"k{n}", title=f"A{n}", actor=SYSTEM).alarm
        for n in range(count)
    ]


def storm_counts() -> dict:
    return {key: REAL_REDIS.get(key) for key in REAL_REDIS.scan_iter("storm:*")}


def storm_line(page) -> str:
    text = page.content.decode()
    return re.search(r'<li id="storm-guard"[^>]*>(.*?)</li>', text, re.S).group(1)


def describe(client, **fields):
    data = {"title": "T", "source": "api", "severity": "high", "labels": "", "at": ""}
    return client.get(PAGE, {**data, **fields})


def test_during_a_storm_the_page_says_the_guard_would_fold_the_alarm(
    operator, storm_guard, paging_alice
):
    raise_many(THRESHOLD)
    counted = storm_counts()

    page = describe(operator)

    line = storm_line(page)
    assert line.startswith("Storm guard: would fold it into the storm alarm for source api")
    assert "3 alarm starts from source api" in line
    assert "Nobody would be notified by this alarm's own steps" in line
    assert 'class="silenced"' in re.search(r'<li id="storm-guard"[^>]*>', page.content.decode())[0]
    assert storm_counts() == counted, "the dry run is not counted as a start"


def test_during_a_storm_the_page_says_a_persons_press_would_page_on_its_own(
    operator, storm_guard, paging_alice, make_device
):
    raise_many(THRESHOLD)
    phone, _ = make_device("Desk phone reception")

    line = storm_line(describe(operator, source="yealink", device=phone.pk))

    assert line.startswith("Storm guard: never folds a person&#x27;s press: it pages on its own")


def test_below_the_threshold_the_page_says_the_alarm_would_notify_on_its_own(
    operator, storm_guard, paging_alice
):
    raise_many(THRESHOLD - 1)

    line = storm_line(describe(operator))

    assert line.startswith("Storm guard: would let it notify on its own (2 alarm starts")


def test_testing_again_and_again_never_starts_a_storm(operator, storm_guard, paging_alice):
    for _ in range(THRESHOLD + 2):
        line = storm_line(describe(operator))

    assert line.startswith("Storm guard: would let it notify on its own (0 alarm starts")
    assert storm_counts() == {}


def test_replaying_an_alarm_the_guard_folded_says_it_was_folded(
    admin_client, storm_guard, paging_alice
):
    *_, folded = raise_many(THRESHOLD + 1)
    assert folded.silenced_by.startswith("the storm guard (source api)")
    for key in REAL_REDIS.scan_iter("storm:*"):  # the storm is long over
        REAL_REDIS.delete(key)

    replay = admin_client.get(PAGE, {"alarm": str(folded.pk)})

    line = storm_line(replay)
    assert line.startswith(f"Storm guard: folded it when it was raised: {folded.silenced_by}")
    assert "Nobody would be notified by this alarm's own steps" in line
    assert "these steps would not run for this alarm" in replay.content.decode()
    assert storm_counts() == {}


def test_replaying_an_alarm_that_notified_says_the_guard_did_not_fold_it(
    admin_client, storm_guard, paging_alice
):
    [alarm] = raise_many(1)

    replay = admin_client.get(PAGE, {"alarm": str(alarm.pk)})

    assert storm_line(replay) == "Storm guard: did not fold it when it was raised"


def test_without_redis_the_page_says_the_guard_is_blind(
    operator, storm_guard, paging_alice, settings
):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    line = storm_line(describe(operator))

    assert line.startswith("Storm guard: blind (Redis cannot be read)")


def test_a_silenced_alarm_never_reaches_the_guard(operator, storm_guard, paging_alice):
    RoutingRule.objects.create(name="Quiet", order=1, silence=True, time_zone="UTC")

    line = storm_line(describe(operator))

    assert line == "Storm guard: not asked: the alarm notifies nobody anyway"


def test_a_time_outside_the_guards_window_is_not_guessed(operator, storm_guard, paging_alice):
    raise_many(THRESHOLD)

    line = storm_line(describe(operator, at="2026-01-05T03:00"))

    assert line.startswith("Storm guard: not known at that time")


# --- whom a step reaches ------------------------------------------------------------------


def steps_of(page) -> list[str]:
    return re.findall(r"<li>(after \d+ s: .*?)</li>", page.content.decode())


def test_a_step_that_only_posts_to_a_channel_is_described_by_the_channel(operator, make_policy):
    hook = NotificationChannel.objects.create(
        kind="webhook", name="Ops hook", config={"url": "https://hooks.example.org/x"}
    )
    make_policy([(0, [], [hook])], name="Hook only", is_default=True)

    page = describe(operator)

    assert steps_of(page) == ["after 0 s: post to Ops hook"]
    assert "nobody by" not in page.content.decode()


def test_a_step_is_described_by_its_people_their_methods_and_its_channels(
    operator, make_policy, make_person
):
    hook = NotificationChannel.objects.create(
        kind="webhook", name="Ops hook", config={"url": "https://hooks.example.org/x"}
    )
    off = NotificationChannel.objects.create(
        kind="webhook", name="Old hook", enabled=False, config={"url": "https://old.example.org/"}
    )
    alice, bob = make_person("Alice"), make_person("Bob", active=False)
    policy = make_policy([(0, [alice, bob], [hook, off]), (60, [], [])], is_default=True)
    first = policy.steps.get(order=0)
    first.methods = ["email", "sms"]
    first.save()

    page = describe(operator)

    assert steps_of(page) == [
        "after 0 s: Alice, Bob (inactive: not notified) by email, sms; "
        "post to Ops hook, Old hook (disabled: not posted to)",
        "after 60 s: nobody",
    ]
    assert not Alarm.objects.exists() and not Delivery.objects.exists()
