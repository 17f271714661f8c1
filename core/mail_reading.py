"""An email read as a person reads it, whatever shape it arrived in: the subject decoded (RFC
2047), the plain-text body (or the HTML one as text), attachments named but not read. Nothing
here raises on a broken mail: what cannot be read is said in `problems`, and the rest is kept.
Text is as decoded: 8-bit bytes in a header may be lone surrogates, a body may hold NUL (the
caller makes it storable, core.storable_text)."""

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

from .html_text import html_text

# HTML beyond this many characters is not read (the parser's time grows with it; a device's
# mail is far shorter): said in problems.
MAX_HTML = 64 * 1024


@dataclass(frozen=True)
class Reading:
    subject: str = ""
    sender: str = ""
    date: str = ""
    message_id: str = ""
    text: str = ""
    html_only: bool = False
    attachments: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read(raw: bytes) -> Reading:
    problems: list[str] = []
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # noqa: BLE001 (the parser is lenient; a mail is never trusted)
        text = raw.decode("utf-8", errors="replace")
        return Reading(text=text, problems=[f"not readable as a mail ({type(exc).__name__})"])
    body = _try(lambda: message.get_body(preferencelist=("plain", "html")), None, problems, "body")
    if body is not None:
        text = _text(body, problems)
    elif _unparsed(message):  # a multipart whose parts were never found: its text as it came
        body, text = message, _unparsed(message)
        problems.append("read as plain text: its parts could not be found")
    else:
        text = ""
        problems.append("no text body")
    defects = sorted({type(d).__name__ for part in message.walk() for d in part.defects})
    if defects:
        problems.append(f"defects: {', '.join(defects)}")
    return Reading(
        subject=_header(message, "Subject", problems),
        sender=_header(message, "From", problems),
        date=_header(message, "Date", problems),
        message_id=_header(message, "Message-ID", problems),
        text=text,
        html_only=body is not None and body.get_content_type() == "text/html",
        attachments=_attachments(message, body, problems),
        problems=problems,
    )


def _try(read_it, default, problems: list[str], what: str):
    try:
        return read_it()
    except Exception as exc:  # noqa: BLE001 (see read)
        problems.append(f"{what} unreadable ({type(exc).__name__})")
        return default


def _header(message: EmailMessage, name: str, problems: list[str]) -> str:
    """The header decoded, on one line; as it was sent when it cannot be decoded."""
    value = _try(lambda: message.get(name), None, problems, f"{name} header")
    if value is None:
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), "")
    return " ".join(str(value).split())


def _text(part: EmailMessage, problems: list[str]) -> str:
    def lossy():  # an unknown charset: the bytes as UTF-8, what is not becomes U+FFFD
        return (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")

    content = _try(part.get_content, None, problems, "body")
    if content is None:
        content = _try(lossy, "", problems, "body bytes")
    if part.get_content_subtype() == "html":
        if len(content) > MAX_HTML:
            problems.append(f"HTML body cut at {MAX_HTML // 1024} KB of {len(content) // 1024} KB")
            content = content[:MAX_HTML]
        content = _try(lambda: html_text(content), "", problems, "HTML body")
    return content.replace("\r\n", "\n").strip()


def _unparsed(message: EmailMessage) -> str:
    payload = message.get_payload()
    if not isinstance(payload, str) or message.get_content_maintype() not in ("text", "multipart"):
        return ""
    text = payload.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\r\n", "\n").strip()


def _attachments(message: EmailMessage, body, problems: list[str]) -> list[dict]:
    """What came beside the text (images, logs, the HTML twin of a plain body is not one)."""
    found = []
    for part in message.walk():
        if part.is_multipart() or part is body:
            continue
        inline_text = part.get_content_maintype() == "text" and not part.is_attachment()
        if inline_text and part.get_content_subtype() in ("plain", "html"):
            continue
        payload = _try(lambda p=part: p.get_payload(decode=True) or b"", b"", problems, "part")
        found.append({
            "filename": str(_try(part.get_filename, "", problems, "filename") or ""),
            "content_type": part.get_content_type(),
            "bytes": len(payload),
        })  # fmt: skip
    return found
