"""Browsers ask every page's server for /favicon.ico: it answers with a small icon of its own."""

import pytest

pytestmark = pytest.mark.django_db


def test_favicon_ico_is_a_small_icon_served_by_this_server(client):
    response = client.get("/favicon.ico", follow=True)

    assert response.status_code == 200
    assert all(url.startswith("/") for url, _ in response.redirect_chain), "no other host"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response["Content-Type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert body[:4] == b"\x00\x00\x01\x00" and len(body) < 4096  # an ICO file, small
