"""The responder page in a real headless Chromium: the service worker registers with the
page's scope (what Web Push needs), and Acknowledge on the page acknowledges as the person."""

import json
import os

import pytest

from alarms.models import Alarm
from alarms.tests import test_board_browser

browser = test_board_browser.browser  # the fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(test_board_browser.CHROMIUM), reason="Debian's chromium is not installed"
    ),
]


def test_the_page_registers_its_worker_and_acknowledges_as_me(
    live_server, browser, make_person, make_user, raise_alarm
):
    alice = make_person("Alice")
    alice.user = make_user("alice")
    alice.save()
    alarm = raise_alarm([alice], methods=["email"], title="Panic in <b>Reception</b>")
    page = browser.new_context().new_page()
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))

    page.goto(live_server.url + "/accounts/login/?next=/me/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw")
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_selector("#push:not([hidden])")
    page.wait_for_selector("#push-state:text-is('Ready.')")
    scope = page.evaluate("navigator.serviceWorker.getRegistration('/me/').then(r => r.scope)")

    assert scope == live_server.url + "/me/"
    assert page.locator(
        "h2.sev-critical, h2.sev-high, h2.sev-warning, h2.sev-info"
    ).first.inner_text() == (
        "Panic in <b>Reception</b>"  # alarm text shown as written, never as markup
    )
    page.click(f"#alarm-{alarm.pk} button:has-text('Acknowledge')")
    page.wait_for_load_state()
    alarm = Alarm.objects.get(pk=alarm.pk)
    assert (alarm.status, alarm.acknowledged_by) == ("acknowledged", "Alice (responder page)")
    assert errors == []


def test_a_push_to_the_closed_page_shows_the_alarm_with_its_buttons(
    live_server, browser, make_person, make_user
):
    alice = make_person("Alice")
    alice.user = make_user("alice")
    alice.save()
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=live_server.url)
    page = context.new_page()
    page.goto(live_server.url + "/accounts/login/?next=/me/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw")
    page.click("button[type=submit], input[type=submit]")
    cdp = context.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda event: registrations.extend(event["registrations"]))  # fmt: skip
    cdp.send("ServiceWorker.enable")
    page.wait_for_selector("#push-state:text-is('Ready.')")
    (registration,) = [r for r in registrations if r["scopeURL"].endswith("/me/")][:1]
    payload = {"title": "[CRITICAL] Panic in Reception", "body": "Demo Clinic / Reception",
               "url": live_server.url + "/a/" + "t" * 43, "tag": "alarm-1",
               "severity": "critical", "page": True}  # fmt: skip

    # What the browser's push service hands the worker while no page of ours is open.
    page.goto("about:blank")
    cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": live_server.url, "registrationId": registration["registrationId"],
        "data": json.dumps(payload),
    })  # fmt: skip
    page.goto(live_server.url + "/me/")
    shown = []
    for _ in range(50):
        shown = page.evaluate(
            "navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.map("
            "n => [n.title, n.body, n.requireInteraction, n.actions.map(a => a.title)]))"
        )
        if shown:
            break
        page.wait_for_timeout(100)

    assert shown == [["[CRITICAL] Panic in Reception", "Demo Clinic / Reception", True,
                      ["Acknowledge", "On my way"]]]  # fmt: skip
