"""Making what arrives from outside safe to keep: bounded JSON, text a database accepts.

Every body, frame or field that a platform, a visitor or an API client sends passes
through here before the rest of the hub sees it, so no route needs its own guard.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.errors import InvalidPayload

MAX_DEPTH = 64
"""Deeper JSON is refused: no platform nests more than about ten levels, and the
parser and everything after it recurse once a level."""

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_SURROGATES = re.compile("[\ud800-\udfff]")
# JSON can carry NUL or a surrogate only as an escape: valid UTF-8 holds neither
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def loads(raw: bytes | str, what: str = "body") -> Any:
    """`json.loads` that answers every bad input with `InvalidPayload`, never a crash,
    and whose strings every database stores (see `clean_text`).

    The nesting is measured before parsing, and only when the body has enough
    brackets to be deep at all; strings are cleaned only when an escape calls for it:
    ordinary payloads pay three C-speed scans.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and depth(data) > MAX_DEPTH:
        raise InvalidPayload(f"{what} nests deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(data)
    except UnicodeDecodeError:
        raise InvalidPayload(f"{what} is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise InvalidPayload(f"{what} is not JSON") from None
    return cleaned(value) if _UNSTORABLE_ESCAPE.search(data) else value


def cleaned(value: Any) -> Any:
    """`value` with `clean_text` applied to every string in it, keys included."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [cleaned(item) for item in value]
    if isinstance(value, dict):
        return {clean_text(key): cleaned(item) for key, item in value.items()}
    return value


def depth(data: bytes) -> int:
    """The deepest nesting of brackets outside strings."""
    deepest = level = 0
    for token in _TOKENS.finditer(data):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            level += 1
            deepest = max(deepest, level)
        elif char in (b"]", b"}"):
            level -= 1
    return deepest


def clean_text(text: str) -> str:
    """Text any database stores: lone surrogates become U+FFFD, NUL goes.

    Everything else, bidi controls and ZWJ sequences included, is kept exactly:
    what is shown to agents is neutralised where it is shown, not here.
    """
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _SURROGATES.search(text) is not None:
        text = _SURROGATES.sub("\ufffd", text)
    return text
