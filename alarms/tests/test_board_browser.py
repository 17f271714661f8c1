"""The dispatch board in a real headless Chromium against a running daphne: log in, see an
alarm arrive without reload, acknowledge it, see the change on a second board."""

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.utils import timezone
from redis import Redis

from alarms import board, outbox_watch
from alarms.models import Alarm, AlarmEvent
from conftest import free_port, wait_until
from escalation.models import Silence

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]
HOSTILE_TITLE = '<img src=x onerror="window.__owned=1">Fire <script>window.__owned=2</script>'


@pytest.fixture
def server(process_env, start_process):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_process(
        ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "alarmsite.asgi:application"],
        process_env(PUBLIC_BASE_URL=url),  # the board's socket takes pages of this origin only
        log_name="board-web",
    )
    wait_until(lambda: _answers(url + "/accounts/login/"), timeout=20)
    return url


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; our DB calls here are plain sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def open_board(browser, server, username, arrived="#empty:not([hidden])", before=None):
    """Sign in and open the board; `arrived`: what shows once the snapshot did (by default:
    nothing open); `before`: a script every page of it runs first."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    if before:
        context.add_init_script(before)
    page = context.new_page()
    page.goto(server + "/board/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(server + "/board/")
    page.wait_for_selector(arrived)
    return page


def test_an_alarm_appears_live_and_an_ack_shows_on_every_board(server, browser, make_device, site):
    for name in ("dana", "dirk"):
        user = User.objects.create_user(name, password="pw")
        user.groups.add(Group.objects.get(name="Dispatch"))
    _, token = make_device(kind="generic")
    first, second = open_board(browser, server, "dana"), open_board(browser, server, "dirk")

    response = requests.post(
        server + "/v1/alarms/raise",
        json={"title": HOSTILE_TITLE, "message": "<b>bold?</b>", "severity": "critical"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 201

    card = first.wait_for_selector(".card.status-triggered", timeout=5000)
    assert card.query_selector(".title").text_content() == HOSTILE_TITLE
    assert card.query_selector("img") is None and card.query_selector("script") is None
    assert first.evaluate("window.__owned") is None
    assert "Clinic North · Reception" in card.query_selector(".where").text_content()
    assert first.text_content(".counter.sev-critical b") == "1"
    second.wait_for_selector(".card.status-triggered")

    card.query_selector("button[data-action=acknowledge]").click()

    acknowledged = second.wait_for_selector(".card.status-acknowledged", timeout=5000)
    assert "Acknowledged by dana" in acknowledged.text_content()
    first.wait_for_selector(".card.status-acknowledged")
    Path(settings.VAR_DIR).mkdir(exist_ok=True)
    first.screenshot(path=str(Path(settings.VAR_DIR) / "board-test.png"))


def test_the_board_shows_a_banner_when_the_socket_drops_and_resyncs_on_reconnect(
    server, browser, make_device
):
    user = User.objects.create_user("dana", password="pw")
    user.groups.add(Group.objects.get(name="Dispatch"))
    _, token = make_device(kind="generic")
    page = open_board(browser, server, "dana")

    page.context.set_offline(True)
    page.evaluate("socket.close()")
    page.wait_for_selector("#banner:not([hidden])")
    assert "reconnecting" in page.text_content("#banner")
    requests.post(
        server + "/v1/alarms/raise",
        json={"title": "Raised while offline"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    page.context.set_offline(False)

    page.wait_for_selector("#banner[hidden]", state="attached", timeout=15000)
    card = page.wait_for_selector(".card", timeout=5000)
    assert card.query_selector(".title").text_content() == "Raised while offline"


def test_filters_hide_other_alarms_and_survive_a_reload(server, browser, make_device):
    user = User.objects.create_user("dana", password="pw")
    user.groups.add(Group.objects.get(name="Dispatch"))
    _, token = make_device(kind="generic")
    page = open_board(browser, server, "dana")
    for title, severity in (("Door ajar", "info"), ("Person down", "critical")):
        requests.post(
            server + "/v1/alarms/raise",
            json={"title": title, "severity": severity},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    # Polled by locators, not wait_for_function: that evaluates a string in the page, which the
    # board's Content-Security-Policy (no eval) rightly refuses.
    playwright.expect(page.locator(".card")).to_have_count(2)

    page.select_option("#filter-severity", "critical")
    playwright.expect(page.locator(".card")).to_have_count(1)
    page.reload()

    assert page.input_value("#filter-severity") == "critical"
    page.wait_for_selector(".card")
    titles = [t.text_content() for t in page.query_selector_all(".card .title")]
    assert titles == ["Person down"]
    assert page.text_content(".counter.sev-info b") == "1", "counters count every open alarm"


def raise_as(server, token, **body):
    response = requests.post(
        server + "/v1/alarms/raise",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text


def card_titles(page) -> list[str]:
    return [t.text_content() for t in page.query_selector_all(".card .title")]


def test_an_alarm_that_fires_again_goes_first_in_its_severity_with_its_count_in_large_bold(
    server, browser, make_device
):
    User.objects.create_user("dana", password="pw").groups.add(Group.objects.get(name="Dispatch"))
    _, token = make_device(kind="generic")
    page = open_board(browser, server, "dana")
    raise_as(server, token, title="Panic button pressed", dedup_key="button", severity="critical")
    for n in range(5):
        raise_as(server, token, title=f"Disk full on db-{n}", dedup_key=f"disk-{n}")
    playwright.expect(page.locator(".card")).to_have_count(6)
    assert card_titles(page)[-1] == "Panic button pressed"

    for _ in range(7):  # pressed again: 8 in all
        raise_as(server, token, title="Panic button pressed", dedup_key="button")

    playwright.expect(page.locator(".card .count:not([hidden])")).to_contain_text("8")
    assert card_titles(page)[0] == "Panic button pressed"
    first = page.locator(".card").first
    playwright.expect(first.locator(".count")).to_have_text("8×")
    count_style = first.locator(".count").evaluate(
        "e => [getComputedStyle(e).fontWeight, getComputedStyle(e).fontSize]"
    )
    severity_size = first.locator(".severity").evaluate("e => getComputedStyle(e).fontSize")
    assert int(count_style[0]) >= 700
    assert float(count_style[1].rstrip("px")) > float(severity_size.rstrip("px"))
    page.reload()  # the snapshot sorts the same way
    playwright.expect(page.locator(".card")).to_have_count(6)
    assert card_titles(page)[0] == "Panic button pressed"


def test_a_reopened_card_says_how_often_and_how_soon_after_its_resolve_it_fired_again(
    server, browser, make_device
):
    User.objects.create_user("dana", password="pw").groups.add(Group.objects.get(name="Dispatch"))
    device, _ = make_device(kind="generic")
    now = timezone.now()
    alarm = Alarm.objects.create(
        title="Fridge too warm", dedup_key="fridge", device=device, source="api",
        occurrences=3, reopen_count=2, reopened_at=now,
    )  # fmt: skip
    resolved = AlarmEvent.objects.create(alarm=alarm, kind=AlarmEvent.Kind.RESOLVED)
    AlarmEvent.objects.filter(pk=resolved.pk).update(at=now - timedelta(seconds=40))
    Alarm.objects.filter(pk=alarm.pk).update(last_occurrence_at=now)

    page = open_board(browser, server, "dana", arrived=".card")

    reopened = page.locator(".card .reopened")
    playwright.expect(reopened).to_have_text("Reopened 2× — fired again 40 s after it was resolved")
    assert "last" in page.text_content(".card .age")


def test_cards_name_the_source_device_and_labels_as_text_so_alike_titles_differ(
    server, browser, make_device
):
    User.objects.create_user("dana", password="pw").groups.add(Group.objects.get(name="Dispatch"))
    senders = [("db-1.example", "PagerDuty prod"), ("web-2.example", "PagerDuty staging")]
    for n, (origin, device_name) in enumerate(senders):
        device, _ = make_device(name=device_name, kind="pagerduty", room=None)
        Alarm.objects.create(
            title="x", dedup_key=f"pd-{n}", device=device, source="pagerduty",
            labels={"origin": origin, "component": HOSTILE_TITLE},
        )  # fmt: skip

    page = open_board(browser, server, "dana", arrived=".card")

    playwright.expect(page.locator(".card")).to_have_count(2)
    origins = sorted(o.text_content() for o in page.query_selector_all(".card .origin"))
    assert origins == [
        "PagerDuty · PagerDuty prod · db-1.example",
        "PagerDuty · PagerDuty staging · web-2.example",
    ]
    labels = [li.text_content() for li in page.query_selector_all(".card .labels li")]
    assert f"component={HOSTILE_TITLE}" in labels and "origin=db-1.example" in labels
    assert page.query_selector(".card img") is None and page.query_selector(".card script") is None
    assert page.evaluate("window.__owned") is None


def test_a_channel_that_cannot_reach_its_provider_shows_a_banner_until_it_can(server, browser):
    user = User.objects.create_user("dana", password="pw")
    user.groups.add(Group.objects.get(name="Dispatch"))
    page = open_board(browser, server, "dana")
    since = timezone.now() - timedelta(minutes=4)
    waiting = [{"channel": "Central registry", "kind": "upstream", "waiting": 3,
                "oldest": since.isoformat(), "failing_since": since.isoformat(),
                "last_error": "connection failed: ConnectionError"}]  # fmt: skip

    outbox_watch.show(waiting)  # as the outbox watch does

    page.wait_for_selector("#outbox:not([hidden])")
    assert page.text_content("#outbox").startswith("Not reaching Central registry: 3 messages")
    page.reload()  # the snapshot carries it too
    page.wait_for_selector("#outbox:not([hidden])")
    outbox_watch.show([])
    page.wait_for_selector("#outbox", state="hidden")


# Sound on, and every tone the board plays counted (each beep is three tones).
COUNT_TONES = """
localStorage.setItem("board.sound", "on");
window.__tones = 0;
const Context = window.AudioContext;
window.AudioContext = class extends Context {
  createOscillator() { window.__tones += 1; return super.createOscillator(); }
};
"""


def test_an_alarm_that_notifies_nobody_does_not_beep_and_one_that_does_beeps_once(
    server, browser, make_device
):
    user = User.objects.create_user("dana", password="pw")
    user.groups.add(Group.objects.get(name="Dispatch"))
    _, token = make_device(kind="generic")
    now = timezone.now()
    Silence.objects.create(matchers='{zone="lab"}', starts_at=now, ends_at=now + timedelta(hours=1),
                           created_by="ops", comment="maintenance")  # fmt: skip
    page = open_board(browser, server, "dana", before=COUNT_TONES)

    for n, labels in enumerate([{"zone": "lab"}] * 3 + [{"zone": "ward"}]):
        requests.post(
            server + "/v1/alarms/raise",
            json={"title": f"Alarm {n}", "dedup_key": f"k{n}", "labels": labels},
            headers={"Authorization": f"Bearer {token}"}, timeout=10,
        ).raise_for_status()  # fmt: skip

    playwright.expect(page.locator(".card")).to_have_count(4)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__tones") == 3, "one beep, for the one alarm that notifies"


def test_on_my_way_shows_who_is_coming_counts_down_and_marks_them_late(
    server, browser, make_device, site
):
    user = User.objects.create_user("dana", password="pw", first_name="Dana")
    user.groups.add(Group.objects.get(name="Dispatch"))
    _, token = make_device(kind="generic")
    page = open_board(browser, server, "dana")
    response = requests.post(server + "/v1/alarms/raise", json={"title": "Fall in room 3"},
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
    card = page.wait_for_selector(".card.status-triggered", timeout=5000)

    card.query_selector(".eta").fill("7")
    card.query_selector("button[data-action=claim]").click()

    claimed = page.wait_for_selector(".card.status-acknowledged .claims li", timeout=5000)
    assert claimed.text_content().startswith("Dana is on the way · ETA ")
    assert re.search(r", in (6 min \d+ s|7 min)$", claimed.text_content())
    alarm = Alarm.objects.get(pk=response.json()["alarm_id"])
    assert alarm.claims.get().name == "Dana"

    # Its ETA passes: the next second's redraw says so, and it stands out.
    alarm.claims.update(eta_at=timezone.now() - timedelta(minutes=2))
    board.publish(alarm)
    late = page.wait_for_selector(".card .claims li.late", timeout=5000)
    assert "Dana is late · ETA " in late.text_content() and "passed 2 min" in late.text_content()


def test_a_board_reads_itself_again_when_another_redis_numbers_its_events(
    browser, make_device, private_redis, process_env, start_process
):
    """A Redis that took over without the last numbers (a replica promoted behind its master;
    here: restarted from an older snapshot) numbers events anew: an update numbered lower than
    what the board saw for that card would be ignored, and once the numbers pass the board's
    again no gap shows it. The epoch in the heartbeat (the server's run id) makes it re-read."""
    port = free_port()
    server = f"http://127.0.0.1:{port}"
    start_process(
        ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "alarmsite.asgi:application"],
        process_env(PUBLIC_BASE_URL=server, REDIS_URL=private_redis.url, BOARD_HEARTBEAT_SECONDS=2),
        log_name="epoch-web",
    )
    wait_until(lambda: _answers(server + "/accounts/login/"), timeout=20)
    user = User.objects.create_user("dana", password="pw")
    user.groups.add(Group.objects.get(name="Dispatch"))
    _, token = make_device(kind="generic")
    page = open_board(browser, server, "dana")
    older = Redis.from_url(private_redis.url)
    for n in range(3):
        raise_as(server, token, title=f"Before the snapshot {n}")
    older.save()  # what the Redis that takes over will know
    for n in range(8):
        raise_as(server, token, title=f"After the snapshot {n}")
    raise_as(server, token, title="Watched alarm")  # its card carries the highest number
    wait_until(lambda: page.locator(".card").count() == 12, timeout=10)
    older.close()

    private_redis.process.kill()  # no save on the way out: the snapshot is what comes back
    private_redis.process.wait(10)
    private_redis.start()
    # Until the web's connections to Redis are back (a new card always shows): numbered below
    # what the board saw, none of these is missed as a gap.
    for n in range(3):
        raise_as(server, token, title=f"Back {n}")
        if _shows(page, f"Back {n}"):
            break
    card = page.locator(".card", has_text="Watched alarm")
    card.locator("button[data-action=acknowledge]").click()  # numbered low by the new Redis
    for n in range(12):  # numbers past what the board saw, every one of them delivered
        raise_as(server, token, title=f"After the takeover {n}")

    page.wait_for_selector(".card.status-acknowledged:has-text('Watched alarm')", timeout=10000)
    assert page.locator(".card", has_text="After the takeover").count() == 12


def _shows(page, title: str) -> bool:
    try:
        page.locator(".card", has_text=title).wait_for(timeout=3000)
        return True
    except playwright.TimeoutError:
        return False
