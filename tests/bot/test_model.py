"""The unified model: parts round-trip through their discriminator, and nothing extra gets in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.model import (
    LocationPart,
    MediaPart,
    PostbackPart,
    QuickRepliesPart,
    QuickReply,
    TextPart,
    event_adapter,
    parts_adapter,
    text_of,
)


def test_parts_round_trip_through_json() -> None:
    parts = [
        TextPart(text="hi"),
        MediaPart(type="image", url="https://x/y.png", caption="look"),
        MediaPart(type="sticker", media_id="abc"),
        LocationPart(latitude=52.5, longitude=13.4, name="Berlin"),
        QuickRepliesPart(replies=(QuickReply(title="Yes", payload="YES"),)),
        PostbackPart(payload="YES", title="Yes"),
    ]
    dumped = parts_adapter.dump_json(parts)
    assert parts_adapter.validate_json(dumped) == parts


def test_unknown_fields_and_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        TextPart(text="hi", html="<b>")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        LocationPart(latitude=95, longitude=0)
    with pytest.raises(ValidationError):
        parts_adapter.validate_python([{"type": "hologram"}])
    with pytest.raises(ValidationError):
        QuickRepliesPart(replies=())


def test_events_are_discriminated_by_type() -> None:
    event = event_adapter.validate_python({"type": "status", "external_id": "m1", "status": "read"})
    assert event.status == "read"


def test_text_of_collects_texts_captions_and_choices() -> None:
    parts = [TextPart(text="a"), MediaPart(type="image", caption="b"), PostbackPart(payload="C")]
    assert text_of(parts) == "a\nb\nC"
