"""The alarm list in a real headless Chromium: at 1,400 px wide every column is in view."""

import os

import pytest
from django.contrib.auth.models import User

from alarms.models import Alarm
from alarms.tests import test_board_browser
from devices.models import Device, Person, Room, Site

browser = test_board_browser.browser  # the fixture


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    not os.path.exists(test_board_browser.CHROMIUM), reason="Debian's chromium is not installed"
)
def test_the_alarm_list_fits_1400_px_with_every_column_in_view(live_server, browser):
    User.objects.create_superuser("operator", "op@example.org", "pw")
    site = Site.objects.create(name="Demo Clinic North Building")
    room = Room.objects.create(site=site, name="Treatment room 1")
    person = Person.objects.create(name="Carol Chen", email="carol@example.org")
    device = Device.objects.create(name="Reception desk phone", kind="yealink", room=room)
    for n in range(5):
        Alarm.objects.create(
            title=f"Emergency key pressed at the reception desk {n}", dedup_key=f"k{n}",
            source="yealink", site=site, room=room, person=person, device=device, occurrences=3,
        )  # fmt: skip
    Alarm.objects.create(  # one long word, as a monitoring target's address may be
        title="http://db-1.cluster-7.eu-central.example.org:9100/metrics", dedup_key="url",
        source="api", site=site, room=room, device=device,
    )  # fmt: skip
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.goto(live_server.url + "/admin/login/?next=/admin/alarms/alarm/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")

    results = page.locator("#changelist-form .results")
    scroll_width, width = results.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert scroll_width <= width, "the table scrolls sideways inside its box"
    right = results.evaluate("e => e.getBoundingClientRect().right")
    for header in page.query_selector_all("#result_list thead th"):
        assert header.bounding_box()["x"] + header.bounding_box()["width"] <= right + 1
    wheres = [
        cell.text_content() for cell in page.query_selector_all("#result_list td.field-where")
    ]
    assert "Demo Clinic North Building / Treatment room 1 · Carol Chen" in wheres
