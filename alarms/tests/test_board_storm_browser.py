"""The board in a storm, in a real headless Chromium: a storm's alarms folded under it, a
person's press above everything, never a false all-clear (at 10,000 open alarms), search and
grouping, keys, screen readers, a phone."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from alarms import board, lifecycle
from alarms.models import Alarm
from alarms.tests import test_board_browser
from alarms.timeline import SYSTEM
from devices.models import Site

pytestmark = test_board_browser.pytestmark
server, browser = test_board_browser.server, test_board_browser.browser  # the fixtures
playwright = test_board_browser.playwright
expect = playwright.expect
COMPLETE = "body[data-state=complete]"


@pytest.fixture
def dana(db):
    user = User.objects.create_user("dana", password="pw")
    user.groups.add(Group.objects.get(name="Dispatch"))
    return user


def open_board(browser, server, before=None, viewport=None):
    page = test_board_browser.open_board(browser, server, "dana", arrived=COMPLETE, before=before)
    if viewport:
        page.set_viewport_size(viewport)
    return page


def monitoring(count: int, severity="critical", **fields) -> list[Alarm]:
    """`count` open monitoring alarms, written as one statement; of the first 200, each fired a
    second before the one before it."""
    now = timezone.now()
    alarms = Alarm.objects.bulk_create(
        Alarm(source="alertmanager", dedup_key=f"{severity}-{n}-{now.timestamp()}",
              title=f"NodeDown node-{n}", severity=severity,
              labels={"alertname": "NodeDown", "instance": f"node-{n}:9100"}, **fields)
        for n in range(count)
    )  # fmt: skip
    for n, alarm in enumerate(alarms[:200]):  # a bulk insert stamps them all with its own time
        Alarm.objects.filter(pk=alarm.pk).update(last_occurrence_at=now - timedelta(seconds=n))
    return alarms


def press(make_device, name="Desk phone 1", title="Emergency key, reception", severity="high"):
    device, _ = make_device(name)
    return lifecycle.raise_alarm(
        source="yealink", dedup_key=f"press-{name}", title=title, severity=severity,
        device=device, actor=SYSTEM,
    ).alarm  # fmt: skip


def titles(page, selector="#alarms .card"):
    return [t.text_content() for t in page.query_selector_all(f"{selector} .title")]


def test_a_storms_alarms_fold_under_its_card_with_their_count_titles_and_show_all(
    server, browser, dana
):
    storm = Alarm.objects.create(
        source="storm", dedup_key="storm:source alertmanager:1", severity="critical",
        title="Alarm storm: 7 alarms from source alertmanager", occurrences=7,
    )  # fmt: skip
    monitoring(7, folded_into=storm, silenced_by="the storm guard (source alertmanager)")
    Alarm.objects.create(source="api", dedup_key="other", title="Fridge warm", severity="info")
    page = open_board(browser, server)

    assert titles(page) == [storm.title, "Fridge warm"], "the folded alarms wait under it"
    folded = page.locator(f'.card[data-id="{storm.pk}"] .folded')
    expect(folded).to_contain_text(
        "7 alarms folded in: NodeDown node-0 · NodeDown node-1 · NodeDown node-2 and 4 more"
    )
    page.click(f'.card[data-id="{storm.pk}"] .show-folded')
    expect(page.locator("#alarms .card")).to_have_count(9)
    assert titles(page)[1] == "NodeDown node-0", "shown right after their storm"
    page.click(f'.card[data-id="{storm.pk}"] .show-folded')
    expect(page.locator("#alarms .card")).to_have_count(2)

    # One more folded alarm arrives live: the storm card counts it, no card of its own shows.
    [late] = monitoring(1, folded_into=storm)
    board.send_card(late.pk)
    expect(folded).to_contain_text("8 alarms folded in")
    expect(page.locator("#alarms .card")).to_have_count(2)
    assert page.locator(".counter[data-severity=critical] b").text_content() == "9"


def test_a_persons_press_stands_above_every_alarm_and_a_repeat_brings_it_to_the_top(
    server, browser, dana, make_device
):
    first = press(make_device, "Desk phone 1", "Emergency key, reception", severity="info")
    second = press(make_device, "Panic button 2", "Panic button, ward 2", severity="high")
    monitoring(150)  # critical, and later than both presses
    page = open_board(browser, server)

    people = page.locator("#people-band")
    assert people.bounding_box()["y"] < page.locator("#alarms").bounding_box()["y"]
    assert titles(page, "#people") == ["Panic button, ward 2", "Emergency key, reception"]
    assert len(titles(page)) == 100, "a page of the other alarms below"

    lifecycle.raise_alarm(source="yealink", dedup_key="press-Desk phone 1", title=first.title,
                          device=first.device, actor=SYSTEM)  # fmt: skip
    expect(page.locator("#people .card").first).to_contain_text("Emergency key, reception")
    expect(page.locator(f'#people .card[data-id="{first.pk}"] .count')).to_have_text("2×")
    assert second.pk  # still in the band, second now
    assert titles(page, "#people") == ["Emergency key, reception", "Panic button, ward 2"]


def test_a_filter_that_hides_a_persons_press_says_so_and_can_show_it(
    server, browser, dana, make_device
):
    press(make_device, severity="high")
    monitoring(3, severity="warning")
    page = open_board(browser, server)

    page.select_option("#filter-severity", "warning")
    notice = page.locator("#hidden-people")
    expect(notice).to_have_text("1 emergency from a person hidden by your filter. Show all")
    expect(page.locator("#people .card")).to_have_count(0)
    page.click("#show-hidden")
    expect(page.locator("#people .card")).to_have_count(1)
    expect(notice).to_be_hidden()
    assert page.locator("#filter-severity").input_value() == ""


def test_search_finds_by_title_room_device_or_label_and_grouping_heads_each_site(
    server, browser, dana, make_device, room
):
    press(make_device, "Desk phone 1")  # in the fixture's room
    north, south = Site.objects.create(name="North"), Site.objects.create(name="South")
    monitoring(4, site=north)
    Alarm.objects.create(source="api", dedup_key="s", title="Door open", site=south,
                         severity="info", labels={"door": "loading-bay"})  # fmt: skip
    page = open_board(browser, server)

    page.fill("#search", "node-3")
    expect(page.locator("#alarms .card")).to_have_count(1)
    page.fill("#search", "loading-bay")
    expect(page.locator("#alarms .card .title")).to_have_text(["Door open"])
    page.fill("#search", room.name.lower())
    expect(page.locator("#people .card")).to_have_count(1)
    expect(page.locator("#alarms .card")).to_have_count(0)
    page.fill("#search", "desk phone")
    expect(page.locator("#people .card")).to_have_count(1)
    page.fill("#search", "")

    page.select_option("#filter-group", "site")  # the group of the most urgent alarm first
    expect(page.locator("#alarms h2.group")).to_have_text(["North · 4", "South · 1"])


def test_keys_move_between_cards_and_acknowledge_and_each_button_names_its_alarm(
    server, browser, dana
):
    Alarm.objects.create(source="api", dedup_key="a", title="Smoke in room 2", severity="critical")
    Alarm.objects.create(source="api", dedup_key="b", title="Door ajar", severity="info")
    page = open_board(browser, server)

    buttons = page.locator("button[data-action=acknowledge]")
    assert buttons.evaluate_all("bs => bs.map(b => b.getAttribute('aria-label'))") == [
        "Acknowledge: Smoke in room 2",
        "Acknowledge: Door ajar",
    ]
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert (
        page.evaluate("document.activeElement.querySelector('.title').textContent") == "Door ajar"
    )
    page.keyboard.press("a")
    expect(page.locator(".card.status-acknowledged .title")).to_have_text("Door ajar")
    assert Alarm.objects.get(dedup_key="b").status == "acknowledged"
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"


def test_at_10000_open_alarms_the_board_never_shows_an_all_clear_even_when_cut_off(
    server, browser, dana
):
    monitoring(10_000)
    # The first socket is cut after three messages of its snapshot; every state the page
    # shows meanwhile is written down.
    before = """
    window.__empty = 0; window.__banners = [];
    const Real = window.WebSocket; let opened = 0;
    window.WebSocket = function (url) {
      const socket = new Real(url);
      if (opened++ === 0) {
        let seen = 0;
        socket.addEventListener("message", () => { if (++seen === 3) socket.close(); });
      }
      return socket;
    };
    window.WebSocket.OPEN = Real.OPEN;
    new MutationObserver(() => {
      const empty = document.getElementById("empty"), banner = document.getElementById("banner");
      if (empty && !empty.hidden) window.__empty++;
      if (banner && !banner.hidden) window.__banners.push(banner.textContent);
    }).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
    """
    page = test_board_browser.open_board(browser, server, "dana", arrived="#banner:not([hidden])",
                                         before=before)  # fmt: skip
    banner = page.evaluate("window.__banners").pop()
    assert "Connection lost" in banner
    assert re.search(r"may be missing alarms: \d+ open alarms known", banner)
    assert page.locator(".counter[data-severity=critical] b").text_content().endswith("+")

    page.wait_for_selector(COMPLETE, timeout=60_000)
    expect(page.locator("#banner")).to_be_hidden()
    assert page.locator(".counter[data-severity=critical] b").text_content() == "10000"
    assert page.locator("#alarms .card").count() == 100
    assert page.evaluate("window.__empty") == 0, "'No open alarms' never showed"

    Alarm.objects.all().delete()
    page.evaluate("socket.close()")  # the resync after reconnecting finds nothing open
    expect(page.locator("#empty")).to_be_visible(timeout=15_000)


def test_a_new_cards_flash_plays_once_and_a_filter_change_does_not_start_it_again(
    server, browser, dana
):
    monitoring(20, severity="warning")
    page = open_board(browser, server)
    assert page.evaluate("document.getAnimations().length") == 0, "the snapshot does not flash"

    fresh = lifecycle.raise_alarm(source="api", dedup_key="n", title="Smoke", severity="critical",
                                  actor=SYSTEM).alarm  # fmt: skip
    page.wait_for_selector(f'.card.new[data-id="{fresh.pk}"]')
    for value in ("critical", "", "warning", ""):
        page.select_option("#filter-severity", value)
        assert page.evaluate("document.getAnimations().length") <= 1
    page.wait_for_selector(f'.card[data-id="{fresh.pk}"]:not(.new)', timeout=10_000)
    for value in ("critical", ""):
        page.select_option("#filter-severity", value)
        assert page.evaluate("document.getAnimations().length") == 0


def test_a_new_alarm_is_announced_once_and_an_idle_board_changes_no_live_region(
    server, browser, dana
):
    monitoring(100, severity="warning")
    watch = """
    window.__live = 0;
    new MutationObserver((changes) => {
      for (const change of changes) {
        const node = change.target.nodeType === 1 ? change.target : change.target.parentElement;
        if (node && node.closest("[aria-live], [role=status], [role=alert]")) window.__live++;
      }
    }).observe(document, {subtree: true, childList: true, characterData: true});
    """
    page = open_board(browser, server, before=watch)
    page.evaluate("window.__live = 0")
    page.wait_for_timeout(3000)
    assert page.evaluate("window.__live") == 0, "ages and countdowns tick outside live regions"

    lifecycle.raise_alarm(source="api", dedup_key="n", title="Smoke in room 2",
                          severity="critical", actor=SYSTEM)  # fmt: skip
    expect(page.locator("#announce")).to_have_text("New critical alarm: Smoke in room 2")
    assert page.locator("[aria-live]").count() == 1


def test_on_a_phone_the_header_is_slim_and_the_buttons_are_thumb_sized_apart(server, browser, dana):
    monitoring(5)
    page = open_board(browser, server, viewport={"width": 390, "height": 844})
    page.reload()
    page.wait_for_selector(COMPLETE)

    header = page.locator("header.bar").bounding_box()
    assert header["height"] <= 0.15 * 844, f"the header takes {header['height']:.0f} px"
    tops = [card.bounding_box()["y"] for card in page.query_selector_all("#alarms .card")]
    assert sum(1 for top in tops if top < 844) >= 2, "at least two cards on the first screen"
    ack, resolve = (page.locator(f"#alarms .card >> nth=0 >> button[data-action={a}]")
                    for a in ("acknowledge", "resolve"))  # fmt: skip
    a, r = ack.bounding_box(), resolve.bounding_box()
    assert min(a["height"], r["height"]) >= 44
    gap = (
        r["x"] - (a["x"] + a["width"])
        if abs(a["y"] - r["y"]) < 1
        else r["y"] - (a["y"] + a["height"])
    )
    assert gap >= 12, f"Acknowledge and Resolve {gap:.0f} px apart"
    assert page.locator("#search").is_hidden(), "filters wait behind one tap"
    page.click("#controls summary")
    assert page.locator("#search").is_visible()
