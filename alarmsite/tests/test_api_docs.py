"""The OpenAPI schema (/v1/schema) describes every API endpoint without a generator warning, and
its docs page (/v1/docs) works offline: everything it loads comes from this server."""

import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest
import yaml
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.views import APIView

from conftest import ROOT

pytestmark = pytest.mark.django_db

DOCS_VIEWS = ("SpectacularAPIView", "SpectacularSwaggerSplitView")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    """The schema as `manage.py spectacular` writes it, failing on any warning or error."""
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
         "--file", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(path.read_text())


def api_views(patterns=None) -> set:
    """Every DRF view class the URL configuration routes to (the API), but the docs' own."""
    views = set()
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            views |= api_views(entry.url_patterns)
        elif isinstance(entry, URLPattern):
            view = getattr(entry.callback, "cls", None)
            if view and issubclass(view, APIView) and view.__name__ not in DOCS_VIEWS:
                views.add(view)
    return views


def test_the_schema_is_generated_without_warnings_and_covers_every_api_view(schema):
    paths = list(schema["paths"])
    described = {resolve(re.sub(r"\{\w+\}", str(uuid.uuid4()), path)).func.cls for path in paths}
    assert described == api_views()
    assert "/v2/enqueue" in paths and "/v1/integrations/pagerduty" in paths
    assert not [path for path in paths if not path.startswith(("/v1/", "/v2/"))]


def test_every_answer_of_every_operation_has_a_described_body(schema):
    """Every answer but a 204's, which has none."""
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                if code == "204":  # No Content: a deleted override
                    assert "content" not in answer
                    continue
                assert answer.get("content"), f"{method.upper()} {path} {code} has no body shape"


def test_the_hand_built_answers_and_the_token_schemes_are_described(schema):
    paths, components = schema["paths"], schema["components"]
    raise_op = paths["/v1/alarms/raise"]["post"]
    body = raise_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    labels = components["schemas"][body.rsplit("/", 1)[1]]["properties"]["labels"]
    assert labels["additionalProperties"] == {"type": "string"}
    assert set(components["schemas"]["Raised"]["properties"]) == {
        "alarm_id", "status", "created", "occurrences"
    }  # fmt: skip
    enqueue = paths["/v2/enqueue"]["post"]
    accepted = enqueue["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    assert accepted.endswith("/PagerDutyAccepted") and "security" not in enqueue
    assert paths["/v1/yealink/alarm"]["get"]["security"] == [{"deviceTokenQuery": []}]
    assert paths["/v1/integrations/alertmanager"]["post"]["security"] == [{"bearerAuth": []}]
    assert {"bearerAuth": []} in raise_op["security"] and {"cookieAuth": []} in raise_op["security"]
    schemes = components["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["deviceTokenQuery"] == {**schemes["deviceTokenQuery"], "in": "query",
                                           "name": "token"}  # fmt: skip


def test_anyone_may_read_the_schema(client):
    response = client.get("/v1/schema", {"format": "json"})

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Alarm broker API"


def test_the_docs_page_loads_only_files_of_this_server(client):
    page = client.get("/v1/docs")

    assert page.status_code == 200
    html = page.content.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in tag for tag in scripts), "inline script: the CSP forbids it"
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert loaded and not [url for url in loaded if re.match(r"(https?:)?//", url)]
    init = next(url for url in loaded if "script" in url and url.startswith("/v1/docs"))
    for url in loaded:
        assert client.get(url.replace("&amp;", "&")).status_code == 200, url
    script = client.get(init.replace("&amp;", "&")).content.decode()
    assert "/v1/schema" in script
    assert not re.search(r"https?://", script), "the start-up script names another host"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_the_docs_page_shows_the_api_in_a_browser_without_reaching_another_host(
    live_server, monkeypatch
):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop in this thread
    requested, complaints = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda message: complaints.append(message.text)
                if message.type == "error" else None)  # fmt: skip
        page.goto(live_server.url + "/v1/docs")
        page.wait_for_selector('[data-path="/v1/alarms/raise"]', timeout=20_000)
        title = page.inner_text(".info .title")
        browser.close()

    assert title.startswith("Alarm broker API")
    assert requested and all(url.startswith(live_server.url) for url in requested), requested
    assert not complaints, complaints
