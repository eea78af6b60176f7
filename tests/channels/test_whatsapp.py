"""WhatsApp Cloud API: every message kind in, statuses, buttons/lists out, the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.errors import PermanentFailure
from bot.keys import DB
from bot.model import (
    ContactCardPart,
    LocationPart,
    MediaPart,
    MessageReceived,
    Outbound,
    Postback,
    QuickRepliesPart,
    QuickReply,
    Reaction,
    StatusChanged,
    TextPart,
)
from bot.storage.tables import contacts, messages
from channels.whatsapp import WhatsAppChannel
from tests.channels.conftest import meta_channel, signed
from tests.conftest import count, eventually
from tests.fakes.graph import FakeGraph

NUMBER_ID = "3003"
WA_ID = "351912345678"


@pytest.fixture
async def channel(meta_hub: TestClient) -> WhatsAppChannel:
    found = await meta_channel(
        meta_hub, "whatsapp", phone_number_id=NUMBER_ID, access_token="WA-TOKEN"
    )
    assert isinstance(found, WhatsAppChannel)
    return found


def change(messages: list[dict[str, Any]] = (), statuses: list[dict[str, Any]] = ()) -> Any:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER_ID},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": WA_ID}],
        "messages": list(messages),
        "statuses": list(statuses),
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
    }


def wa(mid: str, kind: str, **content: Any) -> dict[str, Any]:
    return {"from": WA_ID, "id": mid, "timestamp": "1767225600", "type": kind, **content}


async def test_conversation_both_ways_with_reply_buttons(
    meta_hub: TestClient, graph: FakeGraph, channel: WhatsAppChannel
) -> None:
    raw, headers = signed(change([wa("wamid.1", "text", text={"body": "hi"})]))
    assert (await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 200
    await eventually(lambda: graph.sent)
    ((object_id, body),) = graph.sent
    assert object_id == NUMBER_ID and body["to"] == WA_ID
    assert body["type"] == "interactive" and body["interactive"]["type"] == "button"
    assert body["interactive"]["body"]["text"].startswith("Hi! I'm")
    titles = [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]]
    assert titles == ["Opening hours", "Pricing", "Talk to a human"]
    app = meta_hub.server.app
    async with app[DB].read() as conn:
        contact = (await conn.execute(sa.select(contacts.c.name, contacts.c.phone))).one()
    assert tuple(contact) == ("Ana", f"+{WA_ID}")

    # a failed status arrives later, with the platform's reason in words
    async def sent() -> bool:
        return await count(app, messages, messages.c.external_id == "wamid.OUT1") == 1

    await eventually(sent)
    raw, headers = signed(
        change(
            statuses=[
                {
                    "id": "wamid.OUT1",
                    "status": "failed",
                    "timestamp": "1",
                    "recipient_id": WA_ID,
                    "errors": [{"code": 131047, "title": "Re-engagement message"}],
                }
            ]
        )
    )
    await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)
    async with app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(messages.c.status, messages.c.error).where(
                    messages.c.external_id == "wamid.OUT1"
                )
            )
        ).one()
    assert row.status == "failed" and "approved template" in row.error


async def test_outside_the_window_fails_without_calling_meta(
    graph: FakeGraph, channel: WhatsAppChannel
) -> None:
    old = Outbound(
        message_id=1,
        conversation_id=1,
        recipient=WA_ID,
        parts=(TextPart(text="hi"),),
        last_inbound_at=datetime.now(UTC) - timedelta(hours=25),
    )
    with pytest.raises(PermanentFailure, match="approved template"):
        await channel.send(old)
    assert graph.sent == []


async def test_rate_limit_error_is_retried(
    meta_hub: TestClient, graph: FakeGraph, channel: WhatsAppChannel
) -> None:
    graph.fail(429, 130429, "Rate limit hit")
    with pytest.raises(Exception, match="slow down"):
        await channel.send(
            Outbound(message_id=1, conversation_id=1, recipient=WA_ID, parts=(TextPart(text="x"),))
        )


async def test_media_is_proxied_with_the_token_in_a_header(
    graph: FakeGraph, channel: WhatsAppChannel
) -> None:
    graph.media["MEDIA1"] = b"\xff\xd8\xffjpeg"
    media = await channel.fetch_media("MEDIA1")
    assert media.content == b"\xff\xd8\xffjpeg" and media.content_type == "image/jpeg"


def test_parse_every_kind_and_skip_the_broken_one(channel: WhatsAppChannel) -> None:
    payload = change(
        [
            wa("w1", "text", text={"body": "hello"}),
            wa("w2", "image", image={"id": "I1", "mime_type": "image/jpeg", "caption": "look"}),
            wa("w3", "audio", audio={"id": "A1", "mime_type": "audio/ogg"}),
            wa("w4", "video", video={"id": "V1"}),
            wa("w5", "document", document={"id": "D1", "filename": "cv.pdf"}),
            wa("w6", "sticker", sticker={"id": "S1"}),
            wa("w7", "location", location={"latitude": 1, "longitude": 2, "name": "Cafe"}),
            wa(
                "w8",
                "contacts",
                contacts=[
                    {
                        "name": {"formatted_name": "Rui"},
                        "phones": [{"phone": "+351"}],
                        "emails": [{"email": "r@x.pt"}],
                    }
                ],
            ),
            wa(
                "w9",
                "interactive",
                interactive={"type": "button_reply", "button_reply": {"id": "YES", "title": "Yes"}},
            ),
            wa(
                "w10",
                "interactive",
                interactive={"type": "list_reply", "list_reply": {"id": "P2", "title": "Plan 2"}},
            ),
            wa("w11", "button", button={"payload": "STOP", "text": "Stop promotions"}),
            wa("w12", "reaction", reaction={"message_id": "wamid.OUT1", "emoji": "❤️"}),
            wa("w13", "unsupported", errors=[{"code": 131051}]),
            wa("w14", "text"),  # broken: no body
        ],
        statuses=[{"id": "wamid.OUT1", "status": "read", "timestamp": "1", "recipient_id": WA_ID}],
    )
    events = channel.parse(payload)
    assert [e.external_id for e in events] == [f"w{n}" for n in range(1, 13)] + ["wamid.OUT1"]
    parts = [e.parts[0] for e in events if isinstance(e, MessageReceived)]
    assert parts == [
        TextPart(text="hello"),
        MediaPart(type="image", media_id="I1", mime_type="image/jpeg", caption="look"),
        MediaPart(type="audio", media_id="A1", mime_type="audio/ogg"),
        MediaPart(type="video", media_id="V1"),
        MediaPart(type="file", media_id="D1", name="cv.pdf"),
        MediaPart(type="sticker", media_id="S1"),
        LocationPart(latitude=1, longitude=2, name="Cafe"),
        ContactCardPart(name="Rui", phones=("+351",), emails=("r@x.pt",)),
    ]
    postbacks = [(e.payload, e.title) for e in events if isinstance(e, Postback)]
    assert postbacks == [("YES", "Yes"), ("P2", "Plan 2"), ("STOP", "Stop promotions")]
    assert isinstance(events[11], Reaction) and events[11].to_external_id == "wamid.OUT1"
    assert isinstance(events[12], StatusChanged) and events[12].status == "read"
    assert events[0].sender.name == "Ana"


def test_render_buttons_list_and_numbered_fallback(channel: WhatsAppChannel) -> None:
    def render(n: int) -> list[dict[str, Any]]:
        replies = tuple(QuickReply(title=f"Plan {i}", payload=f"P{i}") for i in range(n))
        return channel.render(
            Outbound(
                message_id=1,
                conversation_id=1,
                recipient=WA_ID,
                parts=(TextPart(text="Which plan?"), QuickRepliesPart(replies=replies)),
            )
        )

    assert render(3)[0]["interactive"]["type"] == "button"
    (listed,) = render(10)
    assert listed["interactive"]["type"] == "list"
    assert len(listed["interactive"]["action"]["sections"][0]["rows"]) == 10
    (text,) = render(11)
    assert text["type"] == "text" and "11. Plan 10" in text["text"]["body"]
