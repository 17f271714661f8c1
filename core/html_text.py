"""HTML as the plain text a person would read in it: tags dropped (scripts, styles and the
head with their content), entities decoded, blocks on lines of their own. What comes out holds
no markup to render, only text (a "<" in it is a character)."""

import re
from html.parser import HTMLParser

# Their content is not text a reader sees.
HIDDEN = {"script", "style", "head", "title", "template", "noscript"}
# Tags that end a line where they start or end.
BLOCKS = {
    "address", "article", "blockquote", "br", "dd", "div", "dl", "dt", "footer", "h1", "h2",
    "h3", "h4", "h5", "h6", "header", "hr", "li", "ol", "p", "pre", "section", "table", "tr",
    "ul",
}  # fmt: skip


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in HIDDEN:
            self.hidden += 1
        elif tag in BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def html_text(html: str) -> str:
    """The text of an HTML document or fragment: lines trimmed, runs of blank lines as one."""
    parser = _Text()
    parser.feed(html)
    # A tag or comment left open at the end is dropped, as browsers do: closing the parser on
    # it would read it as text again from every "<" in it, in time quadratic in its length.
    if parser.rawdata.startswith("<"):
        parser.rawdata = ""
    parser.close()
    lines = (
        re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip() for line in "".join(parser.parts).split("\n")
    )
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
