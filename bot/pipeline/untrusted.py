"""Making what arrives from outside safe to keep: bounded JSON and YAML, text a database
accepts.

Every body, frame or field that a platform, a visitor or an API client sends passes
through here before the rest of the hub sees it, so no route needs its own guard.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from bot.errors import InvalidPayload

MAX_INT = 2**63 - 1  # the databases' BIGINT
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


class _Loader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, bounded: no aliases, `MAX_DEPTH` levels, dates as text,
    and none of YAML's types a survey has no use for (binary, sets, ordered maps).

    Keys are text as written: YAML 1.1 would read `on:` (an automation's trigger) or
    `no:` (Norwegian, in a text per language) as booleans."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise InvalidPayload("YAML aliases (*name) are not accepted: write the value out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise InvalidPayload(f"it nests deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _refuse(kind: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        raise InvalidPayload(f"YAML {kind} ({node.tag}) is not accepted here")

    return construct


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_scalar)
for _tag, _kind in (("binary", "binary data"), ("set", "a set"), ("omap", "an ordered map")):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse(_kind))
_Loader.add_constructor("tag:yaml.org,2002:pairs", _refuse("pairs"))


def load_yaml(text: str, what: str = "the document") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise InvalidPayload(f"not YAML or JSON: {exc}") from None
    except InvalidPayload:
        raise
    except (ValueError, RecursionError) as exc:  # int() of thousands of digits, ...
        raise InvalidPayload(f"{what} has a value YAML cannot read: {exc}") from None


def plain(value: Any, where: str = "") -> Any:
    """`value` if it is JSON-like data a definition can hold (strings cleaned), else a 400
    naming where (`steps.2.text`): text keys, finite numbers that fit 64 bits, lists and
    mappings. What YAML adds (dates, sets, ...) has no place in it."""
    here = where or "the document"
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise InvalidPayload(f"{here}: a number out of range (at most {MAX_INT})")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidPayload(f"{here}: numbers must be finite")
        return value
    if isinstance(value, list):
        return [plain(item, f"{where}.{n}" if where else str(n)) for n, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPayload(f"{here}: the key {str(key)[:40]!r} must be text (quote it)")
            out[clean_text(key)] = plain(item, f"{where}.{key}" if where else key)
        return out
    raise InvalidPayload(f"{here}: a {type(value).__name__} is not accepted")
