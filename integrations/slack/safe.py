"""Contact-controlled text made inert before it enters Slack.

Slack parses `<...>` in every mrkdwn field: `<!channel>` pings the whole workspace,
`<@U123>` renders as a mention, `<https://evil|https://acme>` as a spoofed link. Its
"Escaping text" guide says to send `&`, `<` and `>` as `&amp;`, `&lt;`, `&gt;`.
A right-to-left override in a name reorders the header around it, so a line holding
right-to-left letters or bidi controls is wrapped in FIRST STRONG ISOLATE ... POP
DIRECTIONAL ISOLATE. Slack cuts `text` past 40,000 characters and refuses a section
block past 3,000, so what is longer is cut here, saying how much was left out.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

FSI = "\u2068"  # FIRST STRONG ISOLATE
PDI = "\u2069"  # POP DIRECTIONAL ISOLATE
TEXT_LIMIT = 39_000  # a message's `text`: Slack truncates past 40,000
SECTION_LIMIT = 3_000  # a section block's text: Slack refuses more
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# the contact's own isolates go: their PDI would close ours early
_ISOLATES = str.maketrans(dict.fromkeys(map(ord, "\u2066\u2067\u2068\u2069")))
_REORDERING = frozenset({"R", "AL", "AN", "LRE", "RLE", "LRO", "RLO", "PDF"})
_REORDERING |= {"LRI", "RLI", "FSI", "PDI"}


def inert(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` as Slack shows it literally, isolated line by line, at most `limit` long."""
    shown = "\n".join(_line(line) for line in text.split("\n"))
    return cut(shown, limit)


def inline(text: str, limit: int) -> str:
    """One line of `inert` text (a name, a tag, a field): a newline in a name could
    otherwise forge a line of the header."""
    return cut(_line(" ".join(text.split())), limit, "…")


def link(url: str, label: str) -> str:
    """`<url|label>` for a web address; anything else shown as text, never linked."""
    if not url.lower().startswith(("https://", "http://")):
        return f"{inline(label, 200)} ({inline(url, 500)})"
    # percent-encoded: `|`, `<`, `>`, spaces and the like cannot end the link early
    target = quote(url[:2000], safe=";/?:@&=+$,#%[]!*'()~").translate(_ESCAPES)
    return f"<{target}|{inline(label, 200)}>"


def cut(text: str, limit: int, more: str = "\n(cut: {:,} characters more)") -> str:
    """`text` (built from `inert` pieces) at most `limit` long, cut between entities,
    with any isolate it cut through closed; `more` says what was left out."""
    if len(text) <= limit:
        return text
    kept = text[: limit - len(more) - 16]  # room for the count and a PDI
    amp = kept.rfind("&", -5)  # `&amp;` is the longest entity: 5 characters
    if amp != -1 and ";" not in kept[amp:]:
        kept = kept[:amp]
    if kept.rfind(FSI) > kept.rfind(PDI):
        kept += PDI
    return kept + more.format(len(text) - len(kept))


def _line(line: str) -> str:
    escaped = line.translate(_ESCAPES)
    if escaped.isascii() or not any(unicodedata.bidirectional(c) in _REORDERING for c in escaped):
        return escaped
    return FSI + escaped.translate(_ISOLATES) + PDI
