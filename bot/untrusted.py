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


def loads(raw: bytes | str, what: str = "body") -> Any:
    """`json.loads` that answers every bad input with `InvalidPayload`, never a crash.

    The nesting is measured before parsing, and only when the body has enough
    brackets to be deep at all, so ordinary payloads pay two `count`s.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and depth(data) > MAX_DEPTH:
        raise InvalidPayload(f"{what} nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise InvalidPayload(f"{what} is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise InvalidPayload(f"{what} is not JSON") from None


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
