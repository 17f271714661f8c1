"""Who may read /metrics: a scraper with METRICS_TOKEN as its Bearer token, or a client in
METRICS_ALLOWED_NETWORKS (loopback by default). Everyone else gets 403: the figures describe
the alarm traffic of the sites. Django's figures come with the broker's own (the collector)."""

import hmac
import ipaddress

from django.conf import settings
from django.http import JsonResponse
from django_prometheus.exports import ExportToDjangoView

from core import client_address
from observability import collector  # noqa: F401 (registers the broker's figures with /metrics)


def allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    try:
        client = ipaddress.ip_address(client_address.of_request(request) or "")
    except ValueError:
        return False
    return any(client in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics(request):
    if not allowed(request):
        return JsonResponse({"error": "metrics need the metrics token or an allowed network"},
                            status=403)  # fmt: skip
    return ExportToDjangoView(request)
