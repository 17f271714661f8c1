"""The small interface every transport implements, its config schema, and the HTTP call they share.

A transport gets one `Outgoing` (the alarm, the event, the rendered message, the address and what
the channel remembered about this alarm) and returns a `Sent`, or raises `TransportError`.
Transports never touch the database: retries, the audit and the alarm's references live in
notifications.delivery.
"""

import email.utils
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import parse_qsl, urlsplit

import phonenumbers
import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

# The events a delivery can carry: a step's notification, then the alarm's later changes.
NOTIFY = "notify"
ACKNOWLEDGED = "acknowledged"
RESOLVED = "resolved"
CANCELLED = "cancelled"
TEST = "test"
# To a person a step paged, once the alarm was acknowledged or closed: no need to come.
STAND_DOWN = "stand_down"
CLOSING = frozenset({RESOLVED, CANCELLED})
FOLLOW_UPS = frozenset({ACKNOWLEDGED, RESOLVED, CANCELLED})

# A person's contact point for each method.
PERSON_ADDRESS = {"email": "email", "sms": "phone", "signal": "signal_number", "voice": "phone",
                  "ntfy": "ntfy_topic"}  # fmt: skip
# Methods whose messages a person answers with a reply code ("1a").
REPLY_METHODS = frozenset({"sms", "signal"})


class TransportError(Exception):
    """A failed send. Permanent errors are not retried; transient ones are, with backoff."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        status: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status


@dataclass
class Outgoing:
    alarm: object  # an Alarm (an unsaved sample one for test messages; None for shift notices)
    event: str
    message: object  # notifications.messages.Message
    address: str = ""
    person: object = None
    ref: dict = field(default_factory=dict)  # what this channel remembered about this alarm
    key: str = ""  # the same on every attempt of one message (Delivery.idempotency_key)
    delivery_id: int | None = None  # for a call's callbacks, which name the delivery they are for


@dataclass
class Sent:
    status: str  # "HTTP 202", "SMTP 250"
    response: str = ""
    message_id: str = ""
    ref: dict | None = None  # to remember on the alarm for later updates


@dataclass(frozen=True)
class Field:
    """One key of a channel's JSON config."""

    name: str
    kind: str = "str"  # str, url, email, phone, int, bool, choice, dict, list
    required: bool = False
    default: object = None
    secret: bool = False  # never written to logs or to a Delivery
    choices: tuple = ()
    help: str = ""

    def describe(self) -> str:
        bits = [self.kind + (" (secret)" if self.secret else "")]
        bits.append("required" if self.required else f"default {self.default!r}")
        return f"{self.name}: {', '.join(bits)}{'. ' + self.help if self.help else ''}"


_url = URLValidator(schemes=["http", "https"])


def _check(spec: Field, value):
    kind = spec.kind
    if kind in ("str", "url", "email", "phone", "choice") and not isinstance(value, str):
        raise ValidationError(f"'{spec.name}' must be a string.")
    if kind == "url":
        try:
            _url(value)
        except ValidationError as exc:
            raise ValidationError(f"'{spec.name}' must be an http(s) URL.") from exc
    elif kind == "email":
        for address in filter(None, (a.strip() for a in value.split(","))):
            try:
                validate_email(address)
            except ValidationError as exc:
                raise ValidationError(
                    f"'{spec.name}': {address!r} is not an email address."
                ) from exc
    elif kind == "phone":
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException as exc:
            raise ValidationError(f"'{spec.name}' must be a number in E.164 form.") from exc
        if not phonenumbers.is_valid_number(number):
            raise ValidationError(f"'{spec.name}' is not a valid phone number.")
    elif kind == "choice" and value not in spec.choices:
        raise ValidationError(f"'{spec.name}' must be one of {', '.join(spec.choices)}.")
    elif kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValidationError(f"'{spec.name}' must be a whole number.")
    elif kind == "bool" and not isinstance(value, bool):
        raise ValidationError(f"'{spec.name}' must be true or false.")
    elif kind == "dict" and not (
        isinstance(value, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        raise ValidationError(f"'{spec.name}' must be an object of strings.")
    elif kind == "dict" and spec.name == "headers":
        for name, header in value.items():
            try:
                requests.utils.check_header_validity((name, header))
            except requests.exceptions.InvalidHeader as exc:
                raise ValidationError(f"'headers' has an invalid value for {name!r}.") from exc
    if spec.secret and isinstance(value, str) and (value != value.strip() or "\n" in value):
        raise ValidationError(f"'{spec.name}' must not contain line breaks or edge spaces.")
    elif kind == "list" and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        raise ValidationError(f"'{spec.name}' must be a list of strings.")


class Transport:
    """Sends one rendered message to one address (an email address, a webhook URL…)."""

    label = ""
    config_fields: tuple[Field, ...] = ()
    # The person contact point this kind delivers ("email", "sms", "signal"), if any: such a
    # channel is the gateway for that method, and posts to its own `to` when used as a channel.
    reaches: str | None = None
    # Lifecycle events it posts after a step reached it (a note, a close, a clear…).
    follows_up: frozenset = frozenset()
    # Deliveries to one channel for one alarm go out one at a time, in order (a ticket is
    # created once, then noted, then closed).
    ordered = False
    # Its post is a record (a ticket, an upstream alarm) that is made even when the alarm was
    # acknowledged or closed before it went out; the follow-ups then update it.
    keeps_record = False
    # It keeps something remote in step with the alarm (a ticket, an incident, an upstream
    # alarm): a transient failure is retried for as long as the alarm exists, never given up
    # after DELIVERY_MAX_ATTEMPTS, so the raise and then the clear always arrive (an outbox).
    outbox = False
    # Its test message is followed by the sample alarm's resolve at once: its receiver may open
    # something for an alarm (a ticket, an incident), which the test must not leave open.
    test_resolves = False
    # Whether its messages carry an ACK link (humans read them).
    ack_link = True
    # Templates under templates/notifications/<template_dir>/, and how untrusted text is escaped.
    template_dir = ""
    # Whether it sends an HTML body beside the text (rendered only for those that do).
    sends_html = False

    def __init__(self, config: dict | None = None):
        self.config = config or {}

    @staticmethod
    def escape(text: str) -> str:
        return text

    @classmethod
    def clean_config(cls, config) -> dict:
        """Validate a channel's config and fill in defaults; raise ValidationError naming it."""
        if not isinstance(config, dict):
            raise ValidationError("The config must be a JSON object.")
        known = {spec.name: spec for spec in cls.config_fields}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValidationError(
                f"Unknown key(s): {', '.join(unknown)}. Known: {', '.join(known) or 'none'}."
            )
        cleaned = {}
        for spec in cls.config_fields:
            value = config.get(spec.name, spec.default)
            if value in (None, "") and spec.required:
                raise ValidationError(f"'{spec.name}' is required.")
            if value not in (None, ""):
                _check(spec, value)
            if value is not None:
                cleaned[spec.name] = value
        return cls.check_config(cleaned)

    @classmethod
    def check_config(cls, config: dict) -> dict:
        """Checks across keys, for transports that need them."""
        return config

    @classmethod
    def config_help(cls) -> str:
        return "; ".join(spec.describe() for spec in cls.config_fields) or "no settings"

    def secrets(self) -> list[str]:
        """Every configured value that must never be written down."""
        found = []
        for spec in self.config_fields:
            value = self.config.get(spec.name)
            if not spec.secret or not value:
                continue
            values = value.values() if isinstance(value, dict) else [value]
            for item in values:
                found.append(str(item))
                if spec.kind == "url":
                    parts = urlsplit(str(item))
                    found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
                    found += [value for _, value in parse_qsl(parts.query)]
                    found.append(parts.password or "")
        return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def address_for(self, person=None) -> str:
        """Where a delivery goes: the person's contact point for a gateway, else the channel's
        own destination; '' when there is none. Never a secret (it is stored)."""
        if person is not None:
            return getattr(person, PERSON_ADDRESS[self.reaches], "") if self.reaches else ""
        return self.destination()

    def destination(self) -> str:
        """The channel's own destination, for display: a secret URL shows only its host."""
        if self.reaches:
            return self.config.get("to", "")
        for spec in self.config_fields:
            if spec.name in ("url", "to") and self.config.get(spec.name):
                return shown_url(self.config[spec.name]) if spec.secret else self.config[spec.name]
        return ""

    def send(self, out: Outgoing) -> Sent:
        raise NotImplementedError


def shown_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds, from either of its forms (seconds, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# Kept whole until redacted (a secret cut in half would no longer match), then cut to 500.
RESPONSE_CHARS = 4000
INVALID_REQUEST = (
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
)


class HideRequestTargets(logging.Filter):
    """urllib3 logs each request line at DEBUG; a webhook's path or query is often its secret."""

    def filter(self, record):
        if str(record.msg).startswith('%s://%s:%s "%s %s %s"') and len(record.args) > 4:
            record.args = (*record.args[:4], "/…", *record.args[5:])
        return True


logging.getLogger("urllib3.connectionpool").addFilter(HideRequestTargets())


_sessions = threading.local()


class _Session(requests.Session):
    """What the environment says of a provider (its proxy, or none under NO_PROXY; the CA
    bundle) is read once per host: requests reads it again for every call, a fifth of what a
    webhook's call costs the worker."""

    def __init__(self):
        super().__init__()
        self._environment = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if proxies:  # never asked for here; requests' own way
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        key = (urlsplit(url)[:2], stream, verify, cert)
        found = self._environment.get(key)
        if found is None:
            found = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = found
        return {**found, "proxies": dict(found["proxies"])}


def _session() -> requests.Session:
    """This thread's session: connections to a provider stay open from one message to the
    next (no TCP and TLS handshake each time). It keeps no cookies: one provider's would
    otherwise go to the next."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = _Session()
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


def http(method: str, url: str, *, retry_after_from_body=None, **kwargs) -> requests.Response:
    """One HTTP call with a timeout; failures become transient or permanent TransportErrors.

    Timeouts, connection errors, 429 and 5xx are transient (429 and 503 honour Retry-After);
    any other status of 300 or more is permanent (bad credentials, a rejected payload).
    """
    kwargs.setdefault("timeout", settings.DELIVERY_TIMEOUT_SECONDS)
    kwargs.setdefault("allow_redirects", False)
    try:
        response = _session().request(method, url, **kwargs)
    except INVALID_REQUEST as exc:
        # Its message quotes the offending value, which may be a secret: name only the kind.
        raise TransportError(f"invalid request: {exc.__class__.__name__}", permanent=True) from None
    except requests.Timeout as exc:
        raise TransportError(f"timed out after {settings.DELIVERY_TIMEOUT_SECONDS:g}s") from exc
    except requests.RequestException as exc:
        raise TransportError(f"connection failed: {exc.__class__.__name__}: {exc}") from exc
    status = f"HTTP {response.status_code}"
    summary = f"{status}: {response.text[:RESPONSE_CHARS]}"
    if response.status_code == 429 or response.status_code >= 500:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        if wait is None and retry_after_from_body:
            wait = retry_after_from_body(response)
        raise TransportError(summary, retry_after=wait, status=status)
    if response.status_code >= 300:
        raise TransportError(summary, permanent=True, status=status)
    return response


def answered(response: requests.Response, message_id: str = "", ref: dict | None = None) -> Sent:
    return Sent(
        status=f"HTTP {response.status_code}",
        response=response.text[:RESPONSE_CHARS],
        message_id=str(message_id or ""),
        ref=ref,
    )


def json_of(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
