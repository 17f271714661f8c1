"""Reading a JSON request body, for the API's views and the device fast path: a body nested
deeper than MAX_DEPTH is refused, since Python's parser (and whatever reads the data after it)
would run out of stack on it."""

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64  # objects and arrays within each other; no sender's payload comes near it
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def parse(body: bytes):
    """The JSON value of `body`; ValueError saying why it is not one."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    if deeper_than(value, MAX_DEPTH):
        raise ValueError(TOO_DEEP)
    return value


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
    """DRF's JSON parser, refusing what `parse` refuses with the same 400."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - {TOO_DEEP}") from None
        if deeper_than(value, MAX_DEPTH):
            raise ParseError(f"JSON parse error - {TOO_DEEP}")
        return value
