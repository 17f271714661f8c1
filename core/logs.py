"""Log lines: one JSON object each (or plain text, LOG_FORMAT), carrying the id of the alarm
being handled, with tokens and credentials redacted from every record.

Code that handles an alarm (the raise, a transition, an escalation step, a delivery) runs in
`about_alarm(id)`; every line logged meanwhile, by any logger, gets `alarm_id`.
"""

import contextvars
import logging
import re
from contextlib import contextmanager
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_alarm_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("alarm_id", default=None)


@contextmanager
def about_alarm(alarm_id=None):
    """Lines logged inside concern this alarm; without an id yet, `concerning` names it once
    known. The alarm logged about before is restored on the way out."""
    token = _alarm_id.set(str(alarm_id) if alarm_id else None)
    try:
        yield
    finally:
        _alarm_id.reset(token)


def concerning(alarm_id) -> None:
    """Name the alarm of the current `about_alarm` block (or Celery task)."""
    _alarm_id.set(str(alarm_id) if alarm_id else None)


class AlarmIdFilter(logging.Filter):
    def filter(self, record):
        alarm_id = _alarm_id.get()
        if alarm_id and not getattr(record, "alarm_id", None):
            record.alarm_id = alarm_id
        return True


REDACTED = "[redacted]"
SECRETS = [
    # Query values: device tokens in Yealink and heartbeat URLs, any access_token=…
    (re.compile(r"(token=)[^&\s\"'#]+", re.IGNORECASE), rf"\g<1>{REDACTED}"),
    # The token of an ACK link (/a/<token>), a calendar link (/calendar/<token>.ics), a
    # gateway's reply URL or a call's, bare or in a full URL.
    (
        re.compile(r"(/a/|/calendar/|/replies/sms/|/calls/twilio/)[A-Za-z0-9_\-]+"),
        rf"\g<1>{REDACTED}",
    ),
    # An Authorization header's value, however it is printed ("Authorization: …",
    # 'authorization': '…'), then a bare "Bearer …".
    (re.compile(r"(authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+", re.I), rf"\g<1>{REDACTED}"),
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=\-]+"), rf"\g<1> {REDACTED}"),
]
# What every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


# Any text that one of SECRETS matches holds one of these (ignoring case); most lines hold
# none, and one search is cheaper than every substitution.
_MAYBE_SECRET = re.compile(
    r"token=|/a/|/calendar/|/replies/sms/|/calls/twilio/|authorization|bearer", re.IGNORECASE
)


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _scrubbed(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrubbed(item) for item in value)
    return value


class RedactSecrets(logging.Filter):
    """Tokens out of the message, its extra fields and its traceback, for every handler's
    record: the access log prints request paths with their query strings."""

    def filter(self, record):
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD and isinstance(value, str | dict | list | tuple):
                record.__dict__[name] = _scrubbed(value)
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _iso_time(record) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(_JsonFormatter):
    """{"time", "level", "logger", "message", …extra fields, "exc_info"}: one object a line."""

    def __init__(self, **kwargs):
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # Objects in extra fields (Django's request) are printed, and may print a URL.
            json_default=lambda value: redact(str(value)),
            **kwargs,
        )

    def formatTime(self, record, datefmt=None):
        return _iso_time(record)


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger: message [alarm id]`, for reading in a terminal."""

    def __init__(self, **kwargs):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", **kwargs)

    def formatTime(self, record, datefmt=None):
        return _iso_time(record)

    def formatMessage(self, record):
        text = super().formatMessage(record)
        alarm_id = getattr(record, "alarm_id", None)
        return f"{text} [alarm {alarm_id}]" if alarm_id else text


def logging_config(log_format: str, level: str) -> dict:
    """Django's LOGGING: one console handler for every logger, in the format asked for."""
    if log_format not in ("json", "plain"):
        raise ValueError(f"LOG_FORMAT must be json or plain, not {log_format!r}")
    logging.logThreads = False  # no format prints the thread, and naming it costs every line
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "alarm_id": {"()": AlarmIdFilter},
            "redact": {"()": RedactSecrets},
        },
        "formatters": {
            "json": {"()": JsonFormatter},
            "plain": {"()": PlainFormatter},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["alarm_id", "redact"],
            }
        },
        # Django's own console handler (DEBUG only) would print its lines a second time,
        # unformatted and unredacted: everything goes through ours.
        "loggers": {"django": {"handlers": [], "level": "INFO", "propagate": True}},
        "root": {"handlers": ["console"], "level": level},
    }
