"""Production settings pass Django's deploy check; pages carry the security headers and our
pages run no inline script."""

import re
import subprocess
import sys

import pytest
from django.test import Client

from alarms import lifecycle
from alarms.acklinks import issue_ack_link
from alarms.timeline import SYSTEM
from conftest import ROOT

pytestmark = pytest.mark.django_db

PRODUCTION = {
    "DEBUG": "false",
    "PUBLIC_BASE_URL": "https://alarms.example.org",
    "ALLOWED_HOSTS": "alarms.example.org",
    "SECRET_KEY": "k3Vq9-production-secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0-xyz",
}


def deploy_check(tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), **env},
    )  # fmt: skip


def test_the_deploy_check_is_clean_with_production_settings(tmp_path):
    result = deploy_check(tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_deploy_check_catches_debug_left_on(tmp_path):
    result = deploy_check(tmp_path, **PRODUCTION | {"DEBUG": "true"})
    assert result.returncode != 0 and "security.W018" in result.stderr


def test_pages_forbid_inline_script_and_framing(client):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_over_https_cookies_are_secure_and_hsts_is_sent(client, settings, make_user):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    make_user("dana", role="Dispatch")
    response = client.post("/accounts/login/", {"username": "dana", "password": "pw"}, secure=True)
    assert response.cookies["sessionid"]["secure"] and response.cookies["sessionid"]["httponly"]
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_our_pages_have_no_inline_script(client, make_user, alice):
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="<script>x</script>",
                                  actor=SYSTEM).alarm  # fmt: skip
    ack_path = re.search(r"/a/[\w-]+", issue_ack_link(alarm, alice)).group(0)
    pages = {
        path: client.get(path) for path in ["/accounts/login/", ack_path, "/a/unknown", "/nope"]
    }
    client.force_login(make_user("dana", role="Dispatch"))
    pages["/board/"] = client.get("/board/")
    for path, response in pages.items():
        html = response.content.decode()
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert all("src=" in tag for tag in scripts), f"{path}: {scripts}"
        assert not re.search(r"\son[a-z]+=", html), f"{path} has an inline event handler"
    assert "<script>x</script>" not in pages[ack_path].content.decode()


def test_forms_posted_without_their_csrf_token_are_refused(make_user, alice):
    browser = Client(enforce_csrf_checks=True)
    make_user("dana", role="Dispatch")
    alarm = lifecycle.raise_alarm(source="api", dedup_key="k", title="Fall", actor=SYSTEM).alarm
    ack_path = re.search(r"/a/[\w-]+", issue_ack_link(alarm, alice)).group(0)
    assert browser.post(ack_path).status_code == 403
    assert (
        browser.post("/accounts/login/", {"username": "dana", "password": "pw"}).status_code == 403
    )
    alarm.refresh_from_db()
    assert alarm.status == "triggered"
