"""The dispatch board in a real headless Chromium against a running daphne: log in, see an
alarm arrive without reload, acknowledge it, see the change on a second board."""

import os
import shutil
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group, User

from conftest import free_port, wait_until

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


def open_board(browser, server, username):
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(server + "/board/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(server + "/board/")
    page.wait_for_selector("#empty:not([hidden])")  # the snapshot arrived: nothing open
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
