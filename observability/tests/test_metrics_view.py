"""/metrics is for the scraper: its token or an allowed network; nobody else."""

import ipaddress

import pytest

pytestmark = pytest.mark.django_db


def test_loopback_may_scrape_by_default(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert b"django_http_requests_total" in response.content


def test_others_need_the_token(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"

    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    wrong = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer nope")
    allowed = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-secret"
    )

    assert refused.status_code == 403 and "metrics token" in refused.json()["error"]
    assert wrong.status_code == 403
    assert allowed.status_code == 200


def test_an_allowed_network_may_scrape(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]

    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.21.3.4").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
