"""Label matchers as Prometheus Alertmanager writes them: `name="value"`, `!=`, `=~`, `!~`.

A list may be wrapped in braces and separated by commas or new lines:

    {severity=~"critical|high", site="Main building", room!~"Lab.*"}

Regular expressions are anchored (the whole value must match), and a label an alarm does not
have counts as the empty string, so `room=""` matches alarms without a room.
"""

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

OPERATORS = ("=~", "!~", "!=", "=")
_MATCHER = re.compile(
    r"""\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*
        (?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^,"\s{}]*))\s*(?:,|\n|$)""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def __post_init__(self):
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(f"(?:{self.value})\\Z", re.DOTALL))
            except re.error as exc:
                raise ValidationError(f"{self.name}{self.op}: invalid pattern ({exc})") from exc

    def matches(self, labels: dict) -> bool:
        value = str(labels.get(self.name, ""))
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = self._regex.match(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self):
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse(text: str) -> list[Matcher]:
    """Matchers from their text; a ValidationError says where the text is wrong."""
    body = (text or "").strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers, position = [], 0
    body = body.strip()
    while position < len(body):
        if body[position] in " \t\r\n,":
            position += 1
            continue
        found = _MATCHER.match(body, position)
        if not found or found.end() == position:
            raise ValidationError(
                f"Cannot read a matcher at {body[position : position + 30]!r}: write them as "
                'name="value", name!="value", name=~"regex" or name!~"regex".'
            )
        raw = found["quoted"] if found["quoted"] is not None else found["bare"]
        value = re.sub(r"\\(.)", r"\1", raw) if found["quoted"] is not None else raw
        matchers.append(Matcher(found["name"], found["op"], value))
        position = found.end()
    return matchers


def validate(text: str) -> None:
    parse(text)


def all_match(matchers: list[Matcher], labels: dict) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)
