"""OASIS Common Alerting Protocol 1.2 documents as XML: read without DTDs, entities or external
references (defusedxml), bounded in size, and checked against the OASIS schema
(schemas/cap-1.2.xsd), for what we receive and what we send alike."""

import functools
import re
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_xml
import xmlschema
from defusedxml import DefusedXmlException

NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
NS = {"cap": NAMESPACE}
ALERT_TAG = f"{{{NAMESPACE}}}alert"
SCHEMA_FILE = Path(__file__).parent / "schemas" / "cap-1.2.xsd"
MAX_ERRORS = 10  # named in one answer; the first is usually the one to fix


class CapXmlError(ValueError):
    """A document we do not take: why, and where the schema found it wrong (path, reason)."""

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class TooLarge(CapXmlError):
    pass


@functools.cache
def schema() -> xmlschema.XMLSchema:
    # Loaded once per process (a tenth of a second); local files only, never a remote one.
    return xmlschema.XMLSchema(str(SCHEMA_FILE), allow="local")


def parsed(body: bytes, max_bytes: int, *, allow_dtd: bool = False) -> Element:
    """The document's root element, well-formed and free of DTDs and entities (XML bombs,
    external entities); CapXmlError saying why not. `allow_dtd`: a bare DOCTYPE is let
    through (old RSS feeds declare one), its entities still refused."""
    if len(body) > max_bytes:
        raise TooLarge(f"the document is larger than {max_bytes} bytes")
    try:
        return safe_xml.fromstring(body, forbid_dtd=not allow_dtd)
    except DefusedXmlException as exc:
        raise CapXmlError(f"DTDs and entities are refused ({exc.__class__.__name__})") from None
    except ParseError as exc:
        raise CapXmlError(f"not well-formed XML: {exc}") from None


def short_path(path: str | None) -> str:
    """An XPath without the CAP namespace: /alert/info/urgency."""
    return re.sub(r"\{" + re.escape(NAMESPACE) + r"\}", "", path or "")


def schema_problems(element: Element) -> list[dict]:
    """Where the element breaks the CAP 1.2 schema, and why (at most MAX_ERRORS)."""
    problems = []
    try:
        for error in schema().iter_errors(element):
            problems.append({"path": short_path(error.path), "reason": error.reason or str(error)})
            if len(problems) == MAX_ERRORS:
                break
    except RecursionError:  # elements nested thousands deep (the signature's lax <any>)
        raise CapXmlError("nested too deeply to be checked against the schema") from None
    except ValueError as exc:  # a value the schema's checker itself cannot handle
        raise CapXmlError(f"cannot be checked against the schema: {exc}") from None
    return problems


def checked_alert(element: Element) -> Element:
    """The element if it is a valid CAP 1.2 <alert>; CapXmlError naming the problems."""
    if element.tag != ALERT_TAG:
        raise CapXmlError(
            f"not a CAP 1.2 alert: the root element is {element.tag}, not <alert> in {NAMESPACE}"
        )
    if problems := schema_problems(element):
        first = problems[0]
        raise CapXmlError(f"{first['path']}: {first['reason']}", problems)
    return element
