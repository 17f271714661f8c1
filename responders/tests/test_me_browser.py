"""The responder page in a real headless Chromium: the service worker registers with the
page's scope (what Web Push needs), and Acknowledge on the page acknowledges as the person."""

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
