"""What arrives from outside, made safe: bounded JSON and YAML, storable text."""

from __future__ import annotations

import pytest

from bot.errors import InvalidPayload
from bot.pipeline.untrusted import MAX_DEPTH, clean_text, depth, load_yaml, loads, plain


def test_json_deeper_than_the_limit_is_refused_before_it_is_parsed() -> None:
    deepest = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert depth(deepest) == MAX_DEPTH and isinstance(loads(deepest), list)
    with pytest.raises(InvalidPayload, match="deeper than 64"):
        loads(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    with pytest.raises(InvalidPayload, match="deeper"):
        loads(b"[" * 100_000 + b"]" * 100_000)
    # brackets inside strings are text, not nesting
    assert depth(b'{"a": "[[[[[[[[[[", "b": ["]]]]"]}') == 2
    assert loads(b'["' + b"[" * 500 + b'"]') == ["[" * 500]


@pytest.mark.parametrize(
    ("raw", "detail"),
    [(b"", "not JSON"), (b"{nope", "not JSON"), (b'{"a": "caf\xe9"}', "not UTF-8")],
)
def test_bad_json_is_invalid_payload_naming_what(raw: bytes, detail: str) -> None:
    with pytest.raises(InvalidPayload, match=detail):
        loads(raw, "the frame")


def test_nul_and_lone_surrogates_are_cleaned_everything_else_kept() -> None:
    assert loads(rb'{"a\u0000": ["x\ud800y", "\ud83d\ude00", "\u202e"]}') == {
        "a": ["x\ufffdy", "\U0001f600", "\u202e"]
    }
    assert clean_text("a\x00b\x1b[31m") == "ab\x1b[31m"


def test_yaml_is_bounded_and_plain() -> None:
    assert plain(load_yaml("name: x\nsteps: [1, 2.5, yes]\nwhen: 2026-12-25\n")) == {
        "name": "x",
        "steps": [1, 2.5, True],
        "when": "2026-12-25",
    }
    with pytest.raises(InvalidPayload, match="aliases"):
        load_yaml("a: &x [1]\nb: *x\n")
    with pytest.raises(InvalidPayload, match="deeper"):
        load_yaml("[" * 100 + "]" * 100)
    with pytest.raises(InvalidPayload, match=r"steps\.1: numbers must be finite"):
        plain({"steps": [1, float("inf")]})
    with pytest.raises(InvalidPayload, match="must be text"):
        plain({1: "one"})
    # keys are text as written: YAML 1.1 reads `on:` (an automation's trigger), `no:`
    # (Norwegian) or `1:` as a boolean or a number
    assert plain(load_yaml("on: a\nno: b\n1: c\n")) == {"on": "a", "no": "b", "1": "c"}
