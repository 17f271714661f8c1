"""Text made storable: PostgreSQL holds no NUL in text or JSON, and no database takes a lone
surrogate (JSON's "\\ud800" makes one); both become U+FFFD, so one bad character costs no alarm.
"""

import re

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    return _UNSTORABLE.sub(REPLACEMENT, text)


def made_storable(value, path: str = "") -> tuple[object, list[str]]:
    """The value with every string in it (object keys too, at any depth) made storable, and
    where it had to be changed ("labels.instance", "alerts[1].annotations.summary")."""
    if isinstance(value, str):
        text = storable(value)
        return text, [path] if text != value else []
    if isinstance(value, dict):
        return _object_made_storable(value, path)
    if isinstance(value, list):
        items, changed = [], []
        for index, item in enumerate(value):
            clean, where = made_storable(item, f"{path}[{index}]")
            items.append(clean)
            changed += where
        return items, changed
    return value, []


def _object_made_storable(value: dict, path: str) -> tuple[dict, list[str]]:
    result, changed = {}, []
    for key, item in value.items():
        name = storable(key) if isinstance(key, str) else key
        where = f"{path}.{name}" if path else str(name)
        result[name], inside = made_storable(item, where)
        changed += [where] if name != key and where not in inside else []
        changed += inside
    return result, changed


def within(changed: list[str], prefix: str) -> list[str]:
    """The changed paths under `prefix` ("alerts[1]"), named from there."""
    inside = (f"{prefix}.", f"{prefix}[")
    return [path.removeprefix(prefix).lstrip(".") for path in changed if path.startswith(inside)]


def explained(changed: list[str]) -> str:
    """A timeline entry's text for the fields that were made storable."""
    return f"Made storable (NUL or lone surrogates replaced by U+FFFD): {', '.join(changed)}"
