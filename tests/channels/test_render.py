"""The shared render helpers: splitting and degrading."""

from __future__ import annotations

from bot.model import QuickReply
from channels.render import Capabilities, fits, numbered, split_text


def test_split_text_prefers_breaks_and_loses_nothing() -> None:
    text = "First paragraph here.\n\nSecond one is a bit longer than the first one."
    chunks = split_text(text, 30)
    assert all(len(c) <= 30 for c in chunks)
    assert " ".join(chunks).split() == text.split()
    assert chunks[0] == "First paragraph here."


def test_split_text_hard_cuts_a_word_longer_than_the_limit() -> None:
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
    assert split_text("", 10) == [""]


def test_numbered_and_fits() -> None:
    replies = (QuickReply(title="Yes", payload="Y"), QuickReply(title="No", payload="N"))
    assert numbered(replies) == "1. Yes\n2. No"
    caps = Capabilities(text_limit=10, quick_replies=3, button_title=3, payload_bytes=1)
    assert fits(replies, caps, 3)
    assert not fits(replies, caps, 1)
    assert not fits((QuickReply(title="Maybe", payload="M"),), caps, 3)
