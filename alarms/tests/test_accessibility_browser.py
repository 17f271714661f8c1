"""axe-core in a real headless Chromium on the pages people use: the board (with every kind of
card on it), the ACK page, and the admin's login, alarm list, alarm page and delivery page
(with its attempts). No violation of WCAG 2.1 A and AA."""

from pathlib import Path
from urllib.parse import urlsplit

import axe_playwright_python
import pytest
from django.contrib.auth.models import Group, User

from alarms import lifecycle
from alarms.acklinks import issue_ack_link
from alarms.models import Alarm
from alarms.tests import test_board_browser
from alarms.timeline import SYSTEM
from notifications.tests.steps import drain, run_step

pytestmark = test_board_browser.pytestmark
server, browser = test_board_browser.server, test_board_browser.browser  # the fixtures
AXE = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def violations(page) -> list[str]:
    """What axe-core finds on the page as it is now: one line per rule and element."""
    page.evaluate(AXE)  # evaluated by the browser's debugger, outside the page's CSP
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG
    )
    return [
        f"{v['id']}: {node['target']} {node.get('failureSummary', '')[:200]}"
        for v in result["violations"]
        for node in v["nodes"]
    ]


def assert_clean(page) -> None:
    found = violations(page)
    assert not found, f"{page.url}:\n" + "\n".join(found)


@pytest.fixture
def alarms_of_every_kind(make_device, make_person, make_policy):
    alice = make_person("Alice")
    policy = make_policy([(0, [alice], [])])
    phone, _ = make_device(default_policy=policy)
    raised = [
        lifecycle.raise_alarm(source="yealink", dedup_key="press", title="Emergency key",
                              device=phone, actor=SYSTEM).alarm,
        *(lifecycle.raise_alarm(source="api", dedup_key=f"a{severity}", title=f"Alarm {severity}",
                                severity=severity, labels={"zone": "ward"}, policy=policy,
                                actor=SYSTEM).alarm
          for severity in ("critical", "high", "warning", "info")),
    ]  # fmt: skip
    run_step(raised[0])  # the press's page lists its messages and attempts
    drain(raised[0])
    lifecycle.acknowledge(raised[2].pk, SYSTEM)
    storm = Alarm.objects.create(source="storm", dedup_key="storm", title="Alarm storm: 2 alarms")
    for n in range(2):
        Alarm.objects.create(source="api", dedup_key=f"f{n}", title=f"Folded {n}",
                             folded_into=storm, silenced_by="the storm guard")  # fmt: skip
    return raised, alice


def test_the_board_passes_axe(server, browser, alarms_of_every_kind):
    user = User.objects.create_user("dana", password="pw")
    user.groups.add(Group.objects.get(name="Dispatch"))
    page = test_board_browser.open_board(
        browser, server, "dana", arrived="body[data-state=complete]"
    )
    page.wait_for_timeout(300)

    assert_clean(page)
    # The storm's alarms shown, and a filter hiding the person's press.
    page.click(".folded:not([hidden]) .show-folded")
    page.select_option("#filter-severity", "info")
    page.wait_for_selector("#hidden-people:not([hidden])")
    assert_clean(page)


def test_the_ack_page_passes_axe(server, browser, alarms_of_every_kind):
    (press, *_), alice = alarms_of_every_kind
    path = urlsplit(issue_ack_link(press, alice)).path
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(server + path)

    assert_clean(page)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert_clean(page)


def test_the_admin_login_alarm_list_alarm_and_delivery_pages_pass_axe(
    server, browser, alarms_of_every_kind
):
    (press, *_), _ = alarms_of_every_kind
    User.objects.create_superuser("operator", "op@example.org", "pw")
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.goto(server + "/admin/login/?next=/admin/alarms/alarm/")
    assert_clean(page)

    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")
    assert_clean(page)
    page.goto(server + f"/admin/alarms/alarm/{press.pk}/change/")
    assert_clean(page)
    page.goto(server + f"/admin/notifications/delivery/{press.deliveries.first().pk}/change/")
    assert_clean(page)
