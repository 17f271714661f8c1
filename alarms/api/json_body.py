"""Reading a JSON request body, for the API's views and the device fast path: a byte that is
not of its encoding is read as U+FFFD (one malformed byte costs no alarm), and a body nested
deeper than MAX_DEPTH is refused, since Python's parser (and whatever reads the data after it)
would run out of stack on it."""

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64  # objects and arrays within each other; no sender's payload comes near it
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def parse(body: bytes, encoding: str = "utf-8", strict: bool = False):
    """The JSON value of `body`; ValueError saying why it is not one (`strict`: NaN and
    Infinity are not numbers)."""
    text = text_of(body, encoding)
    try:
        value = json.loads(text, parse_constant=_not_a_number if strict else None)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    if deeper_than(value, MAX_DEPTH):
        raise ValueError(TOO_DEEP)
    return value


def text_of(body: bytes, encoding: str) -> str:
    """The body as text, each byte not of its encoding as U+FFFD (a UTF-8 byte order mark
    dropped, as JSON's own reading drops it)."""
    codec = "utf-8-sig" if encoding.lower().replace("-", "") == "utf8" else encoding
    try:
        return body.decode(codec, errors="replace")
    except LookupError:
        raise ValueError(f"unknown charset {encoding}") from None


def _not_a_number(name: str):
    raise ValueError(f"{name} is not a JSON number")


def deeper_than(value, most: int) -> bool:
    """Whether objects and arrays lie more than `most` levels within each other (without
    recursion: the value may be as deep as the parser went)."""
    waiting = [(value, 1)]
    while waiting:
        item, depth = waiting.pop()
        if isinstance(item, dict):
            inside = item.values()
        elif isinstance(item, list):
            inside = item
        else:
            continue
        if depth > most:
            return True
        waiting.extend((child, depth + 1) for child in inside)
    return False


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSON parser (strict, in the request's charset), reading as `parse` does."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            return parse(stream.read() if stream else b"", encoding, strict=self.strict)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
