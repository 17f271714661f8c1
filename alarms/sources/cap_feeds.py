"""Public warning feeds: Atom or RSS whose entries link to CAP 1.2 alerts (as national warning
services publish them) or carry them inline. Each feed is polled at its interval with a
conditional GET; a new entry's alert is fetched once and applied as its CAP device's
(alarms/sources/cap.py). What went wrong is written on the feed's row."""

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element

import requests
import urllib3
from django.conf import settings
from django.utils import timezone

from core import cap_xml
from core.cap_xml import ALERT_TAG

from ..models import CapFeed
from . import cap, devices
from .refusal import Refused

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")
HEADERS = {
    "User-Agent": "alarm-broker (CAP feed reader)",
    "Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9",
}
MAX_ERROR_CHARS = 2000
CHUNK_BYTES = 65536  # read at a time; a slow server's reads return what arrived


class FeedError(Exception):
    """A fetch or a document that failed; its message goes on the feed's row."""


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: Mapping  # case-insensitive, as requests gives them
    body: bytes


def fetch(url: str, max_bytes: int, headers: dict | None = None) -> Fetched:
    """A GET of an http(s) URL, redirects not followed (one is an error saying where it
    pointed), the body read in chunks up to the size limit (never further) and within
    CAP_FEED_TIMEOUT_SECONDS in all: a server sending a byte now and then is cut off."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise FeedError(f"not an http(s) URL: {url[:200]}")
    timeout = settings.CAP_FEED_TIMEOUT_SECONDS
    timed_out = FeedError(f"{url[:200]}: timed out after {timeout:g}s")
    deadline = time.monotonic() + timeout
    try:
        with requests.get(url, headers={**HEADERS, **(headers or {})}, timeout=timeout,
                          stream=True, allow_redirects=False) as response:  # fmt: skip
            _check_status(url, response)
            body = bytearray()
            while len(body) <= max_bytes:
                if not (chunk := response.raw.read1(CHUNK_BYTES, decode_content=True)):
                    break
                body += chunk
                if time.monotonic() > deadline:
                    raise timed_out
    except (requests.Timeout, urllib3.exceptions.TimeoutError):
        raise timed_out from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise FeedError(f"{url[:200]}: {exc.__class__.__name__}: {exc}") from None
    if len(body) > max_bytes:
        raise FeedError(f"{url[:200]}: larger than {max_bytes} bytes")
    return Fetched(response.status_code, response.headers, bytes(body))


def _check_status(url: str, response: requests.Response) -> None:
    status = response.status_code
    if 300 <= status < 400 and status != 304:
        where = response.headers.get("Location", "nowhere")[:200]
        raise FeedError(f"{url[:200]}: HTTP {status} redirect to {where} (not followed)")
    if status >= 400:
        raise FeedError(f"{url[:200]}: HTTP {status}")


def on_feed_host(url: str, feed_url: str) -> bool:
    """Whether an entry's link is on the feed's own host and port: a feed's body never makes
    us fetch from another host (an internal service, a cloud metadata address)."""
    try:
        link, feed = urlsplit(url), urlsplit(feed_url)
        return (link.hostname, link.port) == (feed.hostname, feed.port)
    except ValueError:  # a port that is not a number
        return False


# --- entries -------------------------------------------------------------------------------


def entries(feed_xml: Element, base_url: str) -> list[tuple[str, object]]:
    """Each entry as (its key, the CAP <alert> it carries or the URL it links to). The key is
    the entry's id (or link) with its update time: an entry changed in place is new."""
    if feed_xml.tag == f"{ATOM}feed":
        items, read = feed_xml.findall(f"{ATOM}entry"), _atom_entry
    elif feed_xml.tag == "rss":
        items, read = feed_xml.findall("channel/item"), _rss_item
    else:
        raise FeedError(f"neither Atom nor RSS: the root element is {feed_xml.tag}")
    found = []
    for item in items:
        key, target = read(item, base_url)
        if target is not None:
            found.append((key, target))
    return found


def _atom_entry(entry: Element, base_url: str) -> tuple[str, object]:
    link = _cap_link([(a.get("href"), a.get("type"), a.get("rel")) for a in
                      entry.findall(f"{ATOM}link")], base_url)  # fmt: skip
    key = entry.findtext(f"{ATOM}id") or link or ""
    updated = entry.findtext(f"{ATOM}updated") or ""
    return f"{key.strip()}|{updated.strip()}", _carried(entry, link)


def _rss_item(item: Element, base_url: str) -> tuple[str, object]:
    links = [(e.get("url"), e.get("type"), "enclosure") for e in item.findall("enclosure")]
    links.append((item.findtext("link"), None, None))
    link = _cap_link(links, base_url)
    key = item.findtext("guid") or link or ""
    updated = item.findtext("pubDate") or ""
    return f"{key.strip()}|{updated.strip()}", _carried(item, link)


def _carried(entry: Element, link: str | None):
    """The CAP <alert> carried in the entry itself (in its content, or as a child), else the
    link to it."""
    inline = entry.find(f".//{ALERT_TAG}")
    return inline if inline is not None else link


def _cap_link(links: list[tuple], base_url: str) -> str | None:
    """The link to the entry's CAP document: one typed as CAP (or XML), else the alternate."""
    usable = [(href.strip(), kind or "", rel or "") for href, kind, rel in links if href]
    for wanted in (lambda k, r: k.startswith(CAP_TYPES), lambda k, r: r in ("", "alternate")):
        for href, kind, rel in usable:
            if wanted(kind, rel):
                return urljoin(base_url, href)
    return None


# --- polling -------------------------------------------------------------------------------


def due_feeds(now=None) -> list[CapFeed]:
    now = now or timezone.now()
    feeds = CapFeed.objects.filter(enabled=True, device__enabled=True).select_related("device")
    return [feed for feed in feeds if feed.last_polled_at is None or due_at(feed) <= now]


def due_at(feed: CapFeed):
    return feed.last_polled_at + timedelta(seconds=feed.poll_interval_seconds)


def poll_due() -> int:
    """Beat: every feed whose interval has passed, each polled by one worker only."""
    polled = 0
    for feed in due_feeds():
        if _claim(feed):
            poll(feed)
            polled += 1
    return polled


def _claim(feed: CapFeed) -> bool:
    """Take the feed's turn (its last poll time moved on) unless another worker just did."""
    now = timezone.now()
    claimed = CapFeed.objects.filter(pk=feed.pk, last_polled_at=feed.last_polled_at)
    if feed.last_polled_at is None:
        claimed = CapFeed.objects.filter(pk=feed.pk, last_polled_at__isnull=True)
    if not claimed.update(last_polled_at=now):
        return False
    feed.last_polled_at = now
    return True


def poll(feed: CapFeed) -> dict:
    """One conditional GET of the feed and each new entry's alert applied once. A 304 changes
    nothing. The validators (ETag, Last-Modified) are kept only when every entry was taken, so
    one that failed is tried again at the next poll."""
    conditional = {}
    if feed.etag:
        conditional["If-None-Match"] = feed.etag
    if feed.last_modified:
        conditional["If-Modified-Since"] = feed.last_modified
    feed.last_polled_at = timezone.now()
    try:
        response = fetch(feed.url, settings.CAP_FEED_MAX_BYTES, conditional)
        if response.status == 304:
            feed.last_error = ""
            feed.save(update_fields=["last_polled_at", "last_error"])
            return {"status": 304, "taken": [], "problems": []}
        document = cap_xml.parsed(response.body, settings.CAP_FEED_MAX_BYTES, allow_dtd=True)
        found = entries(document, feed.url)
    except (FeedError, cap_xml.CapXmlError) as exc:
        return _failed(feed, str(exc))
    seen, taken, problems = set(feed.seen_entries), [], []
    by = devices.integration_actor(feed.device, None)
    for key, target in found:
        if key in seen:
            continue
        try:
            taken.append(cap.apply(_alert_of(target, feed.url), feed.device, by))
            seen.add(key)
        except (FeedError, Refused, cap_xml.CapXmlError) as exc:
            problems.append(f"{key.split('|')[0][:200]}: {exc}")
        except Exception as exc:  # unforeseen: noted, and the other entries and feeds still go
            log.exception("CAP feed %s: entry %s", feed.name, key)
            problems.append(f"{key.split('|')[0][:200]}: {exc.__class__.__name__}: {exc}")
    current = [key for key, _ in found]
    feed.seen_entries = [key for key in current if key in seen]
    if not problems:
        feed.etag = response.headers.get("ETag", "")[:500]
        feed.last_modified = response.headers.get("Last-Modified", "")[:100]
    feed.last_error = "; ".join(problems)[:MAX_ERROR_CHARS]
    feed.save(update_fields=["seen_entries", "etag", "last_modified", "last_polled_at",
                             "last_error"])  # fmt: skip
    return {"status": response.status, "taken": taken, "problems": problems}


def _alert_of(target, feed_url: str) -> dict:
    """The entry's alert, checked: carried inline, or fetched from its link on the feed's
    host."""
    if isinstance(target, str):
        if not on_feed_host(target, feed_url):
            raise FeedError(f"{target[:200]}: not on the feed's host, not fetched")
        body = fetch(target, settings.CAP_MAX_BYTES).body
        target = cap_xml.parsed(body, settings.CAP_MAX_BYTES)
    return cap.read(cap_xml.checked_alert(target))


def _failed(feed: CapFeed, error: str) -> dict:
    log.warning("CAP feed %s: %s", feed.name, error)
    feed.last_error = error[:MAX_ERROR_CHARS]
    feed.save(update_fields=["last_polled_at", "last_error"])
    return {"status": None, "taken": [], "problems": [error]}
