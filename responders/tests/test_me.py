"""The responder page and Web Push: a person's own open alarms with Acknowledge and On my way,
their shifts, a browser's subscription; each page pushed to a local push service that checks
what a real one checks (RFC 8030, a VAPID signature by RFC 8292) and that the payload is
encrypted to the subscription's keys (RFC 8291): the test decrypts it with the browser's key."""

import base64
import json
import os
import time
from urllib.parse import urlsplit

import http_ece
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from alarms.models import AlarmEvent
from core import vapid
from notifications.models import PushSubscription
from notifications.tests.fake_provider import Answer
from notifications.tests.steps import make_channel, send_only

pytestmark = pytest.mark.django_db


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Browser:
    """What a browser keeps of one subscription: its key pair and auth secret."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.p256dh = b64(point)

    def subscription(self, endpoint: str) -> dict:
        return {"endpoint": endpoint, "keys": {"p256dh": self.p256dh, "auth": b64(self.auth)}}


def vapid_problem(request, audience: str) -> str:
    """What a push service refuses in the request's VAPID authorization, or ''."""
    scheme, _, params = request.headers.get("authorization", "").partition(" ")
    if scheme != "vapid":
        return "no vapid authorization"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    header, claims, signature = fields["t"].split(".")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(fields["k"]))
    raw = unb64(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "bad signature"
    if json.loads(unb64(header)) != {"typ": "JWT", "alg": "ES256"}:
        return "not ES256"
    body = json.loads(unb64(claims))
    if body.get("aud") != audience or not body.get("sub", "").startswith("mailto:"):
        return f"bad claims {body}"
    if not time.time() < body["exp"] <= time.time() + 86400:
        return "exp not within 24 hours"
    if fields["k"] != vapid.public_key():
        return "not the key the browser subscribed with"
    return ""


@pytest.fixture
def push_service(provider, settings):
    """A push service: `provider.browser` decrypts what it accepts into `provider.pushed`."""
    provider.browser, provider.pushed = Browser(), []
    settings.WEBPUSH_SERVICE_HOSTS = [*settings.WEBPUSH_SERVICE_HOSTS, "127.0.0.1"]

    def receive(request, match) -> Answer:
        if problem := vapid_problem(request, provider.url):
            return Answer(401, {"error": problem})
        if request.headers.get("content-encoding") != "aes128gcm" or "ttl" not in request.headers:
            return Answer(400, {"error": "Content-Encoding aes128gcm and TTL are required"})
        browser = provider.browser
        clear = http_ece.decrypt(
            request.body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm"
        )
        provider.pushed.append(
            {"payload": json.loads(clear), "urgency": request.headers.get("urgency")}
        )
        return Answer(201, b"", {"Location": f"{provider.url}/m/{len(provider.pushed)}"})

    provider.route("POST", r"/push/(?P<id>\w+)", receive)
    provider.route("POST", r"/gone/(?P<id>\w+)", lambda request, match: Answer(410, b""))
    return provider


@pytest.fixture
def alice(make_person, make_user):
    person = make_person("Alice")
    person.user = make_user("alice")
    person.save()
    return person


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice.user)
    return client


def subscribe(person, endpoint, browser: Browser) -> PushSubscription:
    keys = browser.subscription(endpoint)["keys"]
    return PushSubscription.objects.create(person=person, endpoint=endpoint, **keys)


def test_a_page_is_pushed_signed_and_encrypted_to_every_browser_of_the_person(
    push_service, raise_alarm, alice
):
    make_channel("webpush")
    subscribe(alice, f"{push_service.url}/push/phone", push_service.browser)
    alarm = raise_alarm([alice], methods=["webpush"], severity="critical")

    row = send_only(alarm)

    assert row.status == "sent", row.error
    assert row.address == f"webpush:{alice.pk}"
    (pushed,) = push_service.pushed
    payload = pushed["payload"]
    assert payload["title"].startswith("[CRITICAL] Emergency key pressed")
    assert urlsplit(payload["url"]).path.startswith("/a/")
    assert (payload["tag"], payload["severity"], payload["page"]) == (
        str(alarm.pk),
        "critical",
        True,
    )
    assert pushed["urgency"] == "high"
    token = urlsplit(payload["url"]).path.rsplit("/", 1)[1]
    assert token not in row.message + row.response


def test_a_subscription_the_push_service_forgot_is_removed_and_the_page_fails_over(
    push_service, raise_alarm, alice
):
    make_channel("webpush")
    subscribe(alice, f"{push_service.url}/gone/phone", push_service.browser)
    alarm = raise_alarm([alice], methods=["webpush"])

    row = send_only(alarm)

    assert row.status == "failed" and row.provider_status == "HTTP 410"
    assert not PushSubscription.objects.exists()
    assert alarm.events.filter(kind=AlarmEvent.Kind.UNREACHABLE).exists()


def test_the_page_lists_my_open_alarms_and_acknowledges_as_me(signed_in, raise_alarm, alice, bob):
    mine = raise_alarm([alice], methods=["email"], title="Panic in Reception")
    raise_alarm([bob], methods=["email"], title="Not Alice's", dedup_key="other")

    page = signed_in.get("/me/")

    text = page.content.decode()
    assert page.status_code == 200
    assert "Panic in Reception" in text and "Not Alice's" not in text
    assert 'rel="manifest"' in text and vapid.public_key() in text
    answer = signed_in.post(f"/me/alarms/{mine.pk}/acknowledge")
    assert answer.status_code == 302
    mine.refresh_from_db()
    assert (mine.status, mine.acknowledged_by) == ("acknowledged", "Alice (responder page)")


def test_on_my_way_claims_with_the_minutes_given(signed_in, raise_alarm, alice):
    mine = raise_alarm([alice], methods=["email"])

    signed_in.post(f"/me/alarms/{mine.pk}/claim", {"eta": "7"})

    claim = mine.claims.get()
    assert claim.name == "Alice" and round((claim.eta_at - claim.claimed_at).seconds / 60) == 7


def test_someone_elses_alarm_cannot_be_acted_on_from_my_page(signed_in, raise_alarm, bob):
    theirs = raise_alarm([bob], methods=["email"])

    assert signed_in.post(f"/me/alarms/{theirs.pk}/acknowledge").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "triggered"


def test_a_browser_subscribes_and_renews_by_its_endpoint(signed_in, alice):
    browser = Browser()
    body = browser.subscription("https://fcm.googleapis.com/fcm/send/abc")

    first = signed_in.post("/me/push-subscriptions", body, content_type="application/json")
    again = signed_in.post("/me/push-subscriptions", body, content_type="application/json")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == {"subscribed": True, "devices": 1}
    assert PushSubscription.objects.get().person == alice


@pytest.mark.parametrize("endpoint", [
    "javascript:alert(1)", "http://10.0.0.5:6379/", "https://localhost:8000/admin/",
    "http://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com.evil.example/x",
])  # fmt: skip
def test_a_subscription_that_is_not_a_push_services_is_refused_with_json(signed_in, endpoint):
    keys = {"p256dh": "x" * 40, "auth": "y" * 10}
    answer = signed_in.post("/me/push-subscriptions", {"endpoint": endpoint, "keys": keys},
                            content_type="application/json")  # fmt: skip
    assert (answer.status_code, answer.json()) == (
        400, {"error": "The endpoint is not a push service's."}
    )  # fmt: skip
    assert not PushSubscription.objects.exists()


def test_a_subscription_that_is_not_json_is_refused(signed_in):
    assert (
        signed_in.post("/me/push-subscriptions", "{", content_type="application/json").status_code
        == 400
    )


def test_a_person_keeps_their_newest_five_browsers(signed_in, alice):
    for n in range(7):
        body = Browser().subscription(f"https://fcm.googleapis.com/fcm/send/{n}")
        signed_in.post("/me/push-subscriptions", body, content_type="application/json")
    kept = sorted(s.endpoint[-1] for s in PushSubscription.objects.all())
    assert kept == ["2", "3", "4", "5", "6"]


def test_the_page_needs_a_login_that_is_a_persons(client, make_user):
    assert client.get("/me/").status_code == 302  # to the sign-in page
    client.force_login(make_user("dana"))
    answer = client.get("/me/")
    assert answer.status_code == 403 and "not linked to a person" in answer.content.decode()


def test_the_service_worker_and_manifest_are_served_from_the_page(client):
    worker = client.get("/me/sw.js")
    assert worker.status_code == 200 and worker["Content-Type"].startswith("text/javascript")
    assert b'addEventListener("push"' in worker.content
    manifest = client.get("/me/manifest.webmanifest").json()
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == (
        "/me/",
        "/me/",
        "standalone",
    )


def test_the_vapid_key_is_made_once_and_kept(settings, tmp_path):
    settings.VAPID_PRIVATE_KEY, settings.VAR_DIR = "", tmp_path
    vapid.key.cache_clear()
    try:
        first = vapid.public_key()
        vapid.key.cache_clear()
        assert vapid.public_key() == first
        assert oct((tmp_path / vapid.FILE_NAME).stat().st_mode & 0o777) == "0o600"
    finally:
        vapid.key.cache_clear()
