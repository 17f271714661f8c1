"""The small interface every transport implements, and the HTTP call they share."""

import requests
from django.conf import settings


class TransportError(Exception):
    """A failed send. Permanent errors are not retried; transient ones are, with backoff."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


class Transport:
    """Sends one rendered message to one address (an email address, a webhook URL…)."""

    def __init__(self, config: dict | None = None):
        self.config = config or {}

    @classmethod
    def clean_config(cls, config: dict) -> dict:
        """Validate a channel's config; raise django's ValidationError naming the problem."""
        return config

    def address_for(self, delivery) -> str:
        """Where this delivery goes; '' when the target has no such address."""
        raise NotImplementedError

    def send(self, delivery, message) -> str:
        """Send and return what the provider answered; raise TransportError on failure."""
        raise NotImplementedError


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def post_json(url: str, payload: dict, headers: dict | None = None, body: bytes | None = None):
    """POST JSON with a timeout; map failures to transient or permanent TransportErrors."""
    try:
        response = requests.post(
            url,
            data=body if body is not None else None,
            json=None if body is not None else payload,
            headers=headers or {},
            timeout=settings.DELIVERY_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.Timeout as exc:
        raise TransportError(f"timed out after {settings.DELIVERY_TIMEOUT_SECONDS:g}s") from exc
    except requests.RequestException as exc:
        raise TransportError(f"connection failed: {exc.__class__.__name__}: {exc}") from exc
    summary = f"HTTP {response.status_code}: {response.text[:500]}"
    if response.status_code == 429 or response.status_code >= 500:
        raise TransportError(summary, retry_after=_retry_after(response))
    if response.status_code >= 300:
        raise TransportError(summary, permanent=True)
    return response
