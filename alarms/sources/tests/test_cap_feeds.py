"""Public warning feeds polled from a real HTTP server on loopback that serves an Atom index of
CAP alerts (fixtures/cap/warnings_index.atom, linking to the OASIS examples) and answers
conditional GETs as a web server does: each alert is fetched and raised once, a 304 changes
nothing, a Cancel in the feed clears, and failures are written on the feed's row."""

import threading
import time
from datetime import timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from alarms import tasks
from alarms.models import Alarm, CapFeed
from alarms.sources import cap_feeds
from devices.models import Device
from notifications.tests import fake_provider
from notifications.tests.fake_provider import Answer

from .payloads import integration
from .test_cap import FIXTURES, HSAS, cancel_of, deeply_nested, fixture

pytestmark = pytest.mark.django_db

FEED_PATH = "/warnings.atom"
LAST_MODIFIED = formatdate(1055396400, usegmt=True)


class WarningService:
    """The feed and its alerts, served with an ETag and Last-Modified; a request whose
    If-None-Match and If-Modified-Since match gets a 304 without a body."""

    def __init__(self, server):
        self.server, self.etag, self.documents = server, '"v1"', {}
        self.feed = (FIXTURES / "warnings_index.atom").read_text().replace("{base}", server.url)
        server.route("GET", FEED_PATH, self.serve_feed)
        server.route("GET", r"/cap/(?P<name>[\w.-]+)", self.serve_alert)

    def serve_feed(self, request, match):
        if (request.headers.get("if-none-match") == self.etag
                and request.headers.get("if-modified-since") == LAST_MODIFIED):  # fmt: skip
            return Answer(304, b"", {"ETag": self.etag})
        return Answer(200, self.feed.encode(), {"ETag": self.etag, "Last-Modified": LAST_MODIFIED})

    def serve_alert(self, request, match):
        name = match["name"]
        if name in self.documents:
            return Answer(200, self.documents[name])
        path = FIXTURES / name
        return Answer(200, path.read_bytes()) if path.exists() else Answer(404, b"gone")

    def add_entry(self, entry_id: str, href: str, etag: str) -> None:
        entry = (f"<entry><id>{entry_id}</id><updated>2003-06-12T08:00:00-07:00</updated>"
                 f"<title>{entry_id}</title><link href='{href}'/></entry>")  # fmt: skip
        self.feed = self.feed.replace("</feed>", entry + "</feed>")
        self.etag = etag

    def add_inline_entry(self, entry_id: str, alert: bytes) -> None:
        content = alert.split(b"?>", 1)[1].decode()  # without its XML declaration
        entry = (f"<entry><id>{entry_id}</id><updated>2003-06-12T08:00:00-07:00</updated>"
                 f"<title>{entry_id}</title><content type='application/cap+xml'>{content}"
                 "</content></entry>")  # fmt: skip
        self.feed = self.feed.replace("</feed>", entry + "</feed>")

    def fetched(self) -> list[str]:
        return [request.path for request in self.server.requests]


@pytest.fixture
def service():
    server = fake_provider.start()
    yield WarningService(server)
    fake_provider.stop(server)


@pytest.fixture
def elsewhere():
    """Another server (another port of the loopback host): a feed's links must not reach it."""
    server = fake_provider.start()
    server.route("GET", r"/.*", lambda request, match: Answer(200, fixture("amber_alert")))
    yield server
    fake_provider.stop(server)


@pytest.fixture
def feed(make_device, service):
    device, _ = integration(make_device, Device.Kind.CAP)
    return CapFeed.objects.create(name="National warnings", device=device,
                                  url=service.server.url + FEED_PATH)  # fmt: skip


def poll_again(feed: CapFeed) -> dict:
    feed.refresh_from_db()
    return cap_feeds.poll(feed)


def test_each_alert_of_the_feed_is_fetched_and_raised_once(feed, service):
    result = cap_feeds.poll(feed)

    assert [taken["action"] for taken in result["taken"]] == ["raised", "raised"]
    assert service.fetched() == [FEED_PATH, "/cap/hsas_advisory.xml", "/cap/amber_alert.xml"]
    titles = set(Alarm.objects.values_list("title", flat=True))
    assert titles == {"Homeland Security Sets Code ORANGE", "Amber Alert in Los Angeles County"}
    feed.refresh_from_db()
    assert (feed.etag, feed.last_modified, feed.last_error) == ('"v1"', LAST_MODIFIED, "")
    assert len(feed.seen_entries) == 2


def test_a_re_poll_asks_conditionally_and_a_304_changes_nothing(feed, service):
    cap_feeds.poll(feed)
    before = list(Alarm.objects.values_list("pk", "occurrences", "last_occurrence_at"))

    result = poll_again(feed)

    assert result == {"status": 304, "taken": [], "problems": []}
    conditional = service.server.requests[-1]
    assert conditional.headers["if-none-match"] == '"v1"'
    assert conditional.headers["if-modified-since"] == LAST_MODIFIED
    assert service.fetched()[3:] == [FEED_PATH]  # no alert fetched again
    assert list(Alarm.objects.values_list("pk", "occurrences", "last_occurrence_at")) == before


def test_a_server_ignoring_the_validators_still_raises_nothing_twice(feed, service):
    cap_feeds.poll(feed)
    CapFeed.objects.filter(pk=feed.pk).update(etag="", last_modified="")

    result = poll_again(feed)

    assert result["taken"] == []
    assert service.fetched()[3:] == [FEED_PATH]
    assert Alarm.objects.count() == 2


def test_a_cancel_in_the_feed_clears_its_alert(feed, service):
    cap_feeds.poll(feed)
    service.documents["hsas-cancel.xml"] = cancel_of(*HSAS)
    service.add_entry("urn:oid:hsas.cancel-1", "/cap/hsas-cancel.xml", etag='"v2"')

    result = poll_again(feed)

    assert [taken["action"] for taken in result["taken"]] == ["cleared"]
    assert service.fetched()[3:] == [FEED_PATH, "/cap/hsas-cancel.xml"]  # only the new entry
    assert Alarm.objects.get(title="Homeland Security Sets Code ORANGE").status == "resolved"
    assert Alarm.objects.get(title="Amber Alert in Los Angeles County").status == "triggered"


RSS_DOCTYPE = (
    '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
    '"http://my.netscape.com/publish/formats/rss-0.91.dtd">'
)


def rss_feed(make_device, service, doctype: str) -> CapFeed:
    """An RSS feed whose one item carries the AMBER alert inline."""
    alert = fixture("amber_alert").split(b"?>", 1)[1].decode()
    service.documents["warnings.rss"] = (
        f"<?xml version='1.0' encoding='UTF-8'?>{doctype}<rss version='2.0'><channel>"
        "<title>Warnings</title>"
        f"<item><guid>KAR0-0306112239-SW</guid><title>Amber Alert</title>{alert}</item>"
        "</channel></rss>"
    ).encode()
    device, _ = integration(make_device, Device.Kind.CAP)
    url = f"{service.server.url}/cap/warnings.rss"
    return CapFeed.objects.create(name="RSS", device=device, url=url)


def test_alerts_carried_inline_in_an_rss_feed_are_read(make_device, service):
    rss = rss_feed(make_device, service, RSS_DOCTYPE)  # an old feed's bare DOCTYPE is let by

    result = cap_feeds.poll(rss)

    assert [taken["action"] for taken in result["taken"]] == ["raised"]
    assert service.fetched() == ["/cap/warnings.rss"]  # nothing fetched beyond it
    assert Alarm.objects.get().title == "Amber Alert in Los Angeles County"


def test_a_feed_declaring_entities_is_refused(make_device, service):
    rss = rss_feed(make_device, service, '<!DOCTYPE rss [<!ENTITY lol "lol">]>')

    cap_feeds.poll(rss)

    rss.refresh_from_db()
    assert rss.last_error == "DTDs and entities are refused (EntitiesForbidden)"
    assert not Alarm.objects.exists()


def test_a_failing_feed_says_so_on_its_row(feed, service):
    service.server.fail(503)

    cap_feeds.poll(feed)

    feed.refresh_from_db()
    assert feed.last_error.endswith(f"{FEED_PATH}: HTTP 503")
    assert feed.last_polled_at is not None
    assert not Alarm.objects.exists()


def test_an_entry_that_fails_is_named_and_tried_again_at_the_next_poll(feed, service):
    service.documents["hsas_advisory.xml"] = fixture("hsas_advisory").replace(
        b"<status>Actual</status>", b"<status>Real</status>"
    )

    cap_feeds.poll(feed)

    feed.refresh_from_db()
    assert "urn:oid:hsas.43b080713727: /alert/status: value must be one of" in feed.last_error
    assert feed.etag == ""  # so the next poll reads the feed again
    assert list(Alarm.objects.values_list("title", flat=True)) == [
        "Amber Alert in Los Angeles County"]  # fmt: skip

    del service.documents["hsas_advisory.xml"]  # the service fixed it
    result = poll_again(feed)

    assert [taken["action"] for taken in result["taken"]] == ["raised"]
    assert service.fetched()[3:] == [FEED_PATH, "/cap/hsas_advisory.xml"]
    feed.refresh_from_db()
    assert (feed.last_error, feed.etag) == ("", '"v1"')


def test_a_feed_that_does_not_answer_in_time_times_out(feed, service, settings):
    settings.CAP_FEED_TIMEOUT_SECONDS = 0.3
    service.server.fail(200, delay=1.0)

    cap_feeds.poll(feed)

    feed.refresh_from_db()
    assert "timed out after 0.3s" in feed.last_error


def test_a_feed_over_the_size_limit_is_not_read(feed, service, settings):
    settings.CAP_FEED_MAX_BYTES = 500

    cap_feeds.poll(feed)

    feed.refresh_from_db()
    assert "larger than 500 bytes" in feed.last_error
    assert not Alarm.objects.exists()


def test_an_entry_that_breaks_the_schema_checker_is_noted_and_the_rest_still_taken(
    feed, service, make_device
):
    service.add_inline_entry("urn:oid:deep", deeply_nested(fixture("earthquake_update")))
    device, _ = make_device("Another CAP integration", kind=Device.Kind.CAP, room=None)
    second = CapFeed.objects.create(name="Second", device=device, url=feed.url)

    assert tasks.poll_cap_feeds() == 2

    for each in (feed, second):
        each.refresh_from_db()
        assert each.last_error == "urn:oid:deep: nested too deeply to be checked against the schema"
        assert len(each.seen_entries) == 2  # the two alerts taken, the deep one to retry
    assert Alarm.objects.count() == 4  # each feed's device raised both


def test_a_redirect_is_not_followed_and_says_where_it_pointed(make_device, service, elsewhere):
    target = f"{elsewhere.url}/latest/meta-data/"
    service.server.route("GET", "/moved.atom", lambda r, m: Answer(302, b"", {"Location": target}))
    device, _ = integration(make_device, Device.Kind.CAP)
    moved = CapFeed.objects.create(name="Moved", device=device,
                                   url=f"{service.server.url}/moved.atom")  # fmt: skip

    cap_feeds.poll(moved)

    moved.refresh_from_db()
    assert moved.last_error.endswith(f"/moved.atom: HTTP 302 redirect to {target} (not followed)")
    assert elsewhere.requests == []


def test_links_to_another_host_are_not_fetched(feed, service, elsewhere):
    service.add_entry("urn:elsewhere", f"{elsewhere.url}/cap/amber_alert.xml", etag='"v2"')
    service.add_entry("urn:file", "file:///etc/passwd", etag='"v2"')

    result = cap_feeds.poll(feed)

    assert [taken["action"] for taken in result["taken"]] == ["raised", "raised"]
    assert elsewhere.requests == []
    feed.refresh_from_db()
    assert feed.last_error == (
        f"urn:elsewhere: {elsewhere.url}/cap/amber_alert.xml: not on the feed's host, not "
        "fetched; urn:file: file:///etc/passwd: not on the feed's host, not fetched"
    )


class Dripping(BaseHTTPRequestHandler):
    """A server that answers at once and then sends its body a byte every tenth of a second:
    no single read waits long, the whole takes seconds."""

    body = b"<feed xmlns='http://www.w3.org/2005/Atom'><title>slow</title></feed>"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            for i in range(len(self.body)):
                self.wfile.write(self.body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up

    def log_message(self, *args):
        pass


@pytest.fixture
def dripping():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Dripping)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_feed_dripping_its_body_is_cut_off_at_the_deadline(make_device, dripping, settings):
    settings.CAP_FEED_TIMEOUT_SECONDS = 0.5
    device, _ = integration(make_device, Device.Kind.CAP)
    slow = CapFeed.objects.create(name="Slow", device=device, url=f"{dripping}/feed.atom")
    started = time.monotonic()

    cap_feeds.poll(slow)

    assert time.monotonic() - started < 1.5  # the whole body would take 7 s
    slow.refresh_from_db()
    assert slow.last_error == f"{dripping}/feed.atom: timed out after 0.5s"


def test_beat_polls_only_the_feeds_that_are_due(feed, service, make_device):
    device, _ = make_device("Another CAP integration", kind=Device.Kind.CAP, room=None)
    a_minute_ago = timezone.now() - timedelta(seconds=60)
    recent = CapFeed.objects.create(name="Polled a minute ago", device=device, url=feed.url,
                                    last_polled_at=a_minute_ago)  # fmt: skip
    CapFeed.objects.create(name="Disabled", device=device, url=feed.url, enabled=False)

    assert tasks.poll_cap_feeds() == 1

    assert service.fetched()[0] == FEED_PATH
    recent.refresh_from_db()
    assert recent.last_error == "" and recent.seen_entries == []
    assert tasks.poll_cap_feeds() == 0  # the polled one is not due again yet


def test_an_operator_polls_a_feed_now_from_the_admin(feed, service, client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("op", "op@example.org", "pw"))

    listed = client.get("/admin/alarms/capfeed/")
    response = client.post("/admin/alarms/capfeed/", {"action": "poll_now",
                           "_selected_action": [feed.pk]}, follow=True)  # fmt: skip

    assert listed.status_code == 200 and "National warnings" in listed.content.decode()
    assert "National warnings: 2 new alert(s)." in response.content.decode()
    assert Alarm.objects.count() == 2
    assert client.get(f"/admin/alarms/capfeed/{feed.pk}/change/").status_code == 200
