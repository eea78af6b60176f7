"""Messenger: signed webhooks in, the Send API out (against the fake Graph API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.keys import DB
from bot.model import (
    LocationPart,
    MediaPart,
    MessageReceived,
    Outbound,
    Postback,
    QuickRepliesPart,
    QuickReply,
    Reaction,
    ReadUpTo,
    StatusChanged,
    TextPart,
)
from bot.storage.tables import contacts, messages
from channels.messenger import MessengerChannel
from tests.channels.conftest import VERIFY_TOKEN, meta_channel, signed
from tests.channels.malformed import mutations, raw_post
from tests.conftest import count, eventually
from tests.fakes.graph import FakeGraph

PAGE = "1001"
OTHER_PAGE = "9009"  # another space's page, on the same Meta app
PSID = "2002"


@pytest.fixture
async def channel(meta_hub: TestClient) -> MessengerChannel:
    found = await meta_channel(meta_hub, "messenger", page_id=PAGE, page_token="PAGE-TOKEN")
    assert isinstance(found, MessengerChannel)
    return found


def page(*items: dict[str, Any], entries: int = 1) -> dict[str, Any]:
    return {
        "object": "page",
        "entry": [{"id": PAGE, "time": 1, "messaging": list(items)} for _ in range(entries)],
    }


def msg(mid: str, **message: Any) -> dict[str, Any]:
    return {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE},
        "timestamp": 1767225600000,
        "message": {"mid": mid, **message},
    }


async def test_handshake(meta_hub: TestClient, channel: MessengerChannel) -> None:
    url = f"/webhooks/{channel.id}"
    ok = await meta_hub.get(
        url,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status == 200 and await ok.text() == "1158201444"
    bad = await meta_hub.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "x"}
    )
    assert bad.status == 403


async def test_signature_is_checked_on_the_raw_body(
    meta_hub: TestClient, channel: MessengerChannel
) -> None:
    raw, headers = signed(page(msg("m1", text="hi")), secret="wrong")
    assert (await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 401
    headers.pop("X-Hub-Signature-256")
    assert (await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 401
    assert await count(meta_hub.server.app, messages) == 0


async def test_a_signature_header_that_is_not_utf8_is_401_not_500(
    meta_hub: TestClient, channel: MessengerChannel
) -> None:
    raw, headers = signed(page(msg("m1", text="hi")))
    good = headers["X-Hub-Signature-256"].encode()
    url = f"/webhooks/{channel.id}"
    for header in (good[:-1] + b"\xff", b"\xff" + good):
        assert await raw_post(meta_hub, url, b"X-Hub-Signature-256: " + header, raw) == 401
    assert await raw_post(meta_hub, url, b"X-Hub-Signature-256: " + good, raw) == 200


async def test_conversation_both_ways(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    raw, headers = signed(page(msg("m1", text="hi")))
    assert (await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 200
    await eventually(lambda: graph.sent)
    ((object_id, body),) = graph.sent
    assert object_id == PAGE and body["recipient"] == {"id": PSID}
    assert body["messaging_type"] == "RESPONSE"
    assert body["message"]["text"].startswith("Hi! I'm")
    assert [q["title"] for q in body["message"]["quick_replies"]] == [
        "Opening hours",
        "Pricing",
        "Talk to a human",
    ]

    # delivery and read receipts update our message
    app = meta_hub.server.app

    async def status() -> str | None:
        async with app[DB].read() as conn:
            return (
                await conn.execute(
                    sa.select(messages.c.status).where(messages.c.direction == "out")
                )
            ).scalar()

    await eventually(lambda: _is(status, "sent"))
    raw, headers = signed(
        page(
            {
                "sender": {"id": PSID},
                "recipient": {"id": PAGE},
                "timestamp": 1,
                "delivery": {"mids": ["m_OUT1"]},
            }
        )
    )
    await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)
    assert await status() == "delivered"
    future = int((datetime.now(UTC) + timedelta(minutes=1)).timestamp() * 1000)
    raw, headers = signed(
        page(
            {
                "sender": {"id": PSID},
                "recipient": {"id": PAGE},
                "timestamp": 1,
                "read": {"watermark": future},
            }
        )
    )
    await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)
    assert await status() == "read"


async def test_window_error_is_failed_with_clear_text(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    graph.fail(400, 10, "This message is sent outside of allowed window.", subcode=2018278)
    raw, headers = signed(page(msg("m1", text="hi")))
    await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)
    app = meta_hub.server.app

    async def error() -> str | None:
        async with app[DB].read() as conn:
            return (
                await conn.execute(sa.select(messages.c.error).where(messages.c.status == "failed"))
            ).scalar()

    assert "outside the 24-hour window" in await eventually(error)


async def test_agent_reply_after_a_day_uses_the_human_agent_tag(
    graph: FakeGraph, channel: MessengerChannel
) -> None:
    two_days = datetime.now(UTC) - timedelta(days=2)
    out = Outbound(
        message_id=1,
        conversation_id=1,
        recipient=PSID,
        parts=(TextPart(text="Sorry for the wait"),),
        sender_name="Bea",
        last_inbound_at=two_days,
    )
    await channel.send(out)
    body = graph.sent[-1][1]
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    assert body["message"]["text"] == "Bea: Sorry for the wait"
    with pytest.raises(Exception, match="outside Messenger's window"):
        await channel.send(out.model_copy(update={"sender_name": None}))


def test_parse_batch_with_every_kind_and_a_broken_item(channel: MessengerChannel) -> None:
    items = [
        msg("m1", text="hello"),
        msg(
            "m2",
            attachments=[
                {"type": "image", "payload": {"url": "https://cdn/i.jpg"}},
                {"type": "file", "payload": {"url": "https://cdn/f.pdf"}},
            ],
        ),
        msg(
            "m3",
            attachments=[
                {
                    "type": "location",
                    "title": "Home",
                    "payload": {"coordinates": {"lat": 1.5, "long": 2.5}},
                }
            ],
        ),
        msg("m4", text="Pricing", quick_reply={"payload": "PRICING"}),
        msg("m5", text="echo", is_echo=True),
        {"sender": {"id": PSID}, "timestamp": 5},  # broken: no event in it
        {"sender": {}, "message": {"mid": "x", "text": "no sender id"}},  # broken
        {
            "sender": {"id": PSID},
            "recipient": {"id": PAGE},
            "timestamp": 6,
            "postback": {
                "mid": "m6",
                "title": "Get started",
                "payload": "GET_STARTED",
                "referral": {"ref": "ad-42", "source": "ADS"},
            },
        },
        {"sender": {"id": PSID}, "timestamp": 7, "delivery": {"mids": ["m_OUT1", "m_OUT2"]}},
        {"sender": {"id": PSID}, "timestamp": 8, "read": {"watermark": 1767225600000}},
        {
            "sender": {"id": PSID},
            "timestamp": 9,
            "reaction": {"mid": "m_OUT1", "action": "react", "emoji": "👍", "reaction": "like"},
        },
    ]
    batch = {
        "object": "page",
        "entry": [{"id": PAGE, "messaging": items[:6]}, {"id": PAGE, "messaging": items[6:]}],
    }
    events = channel.parse(batch)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "MessageReceived",
        "MessageReceived",
        "MessageReceived",
        "Postback",
        "Postback",
        "StatusChanged",
        "StatusChanged",
        "ReadUpTo",
        "Reaction",
    ]
    assert events[1].parts == (
        MediaPart(type="image", url="https://cdn/i.jpg"),
        MediaPart(type="file", url="https://cdn/f.pdf"),
    )
    assert events[2].parts == (LocationPart(latitude=1.5, longitude=2.5, name="Home"),)
    assert isinstance(events[3], Postback) and events[3].payload == "PRICING"
    assert isinstance(events[4], Postback) and events[4].referral == "ad-42"
    assert isinstance(events[5], StatusChanged) and events[5].status == "delivered"
    assert isinstance(events[7], ReadUpTo)
    assert isinstance(events[8], Reaction) and events[8].emoji == "👍"
    assert isinstance(events[0], MessageReceived)


def test_render_degrades_more_than_13_quick_replies_and_splits_at_2000(
    channel: MessengerChannel,
) -> None:
    many = QuickRepliesPart(
        replies=tuple(QuickReply(title=f"Option {n}", payload=f"O{n}") for n in range(14))
    )
    (body,) = channel.render(
        Outbound(
            message_id=1, conversation_id=1, recipient=PSID, parts=(TextPart(text="Pick"), many)
        )
    )
    assert "quick_replies" not in body["message"]
    assert body["message"]["text"].startswith("Pick\n\n1. Option 0\n2. Option 1")
    long = channel.render(
        Outbound(
            message_id=1, conversation_id=1, recipient=PSID, parts=(TextPart(text="a " * 1500),)
        )
    )
    assert [len(b["message"]["text"]) <= 2000 for b in long] == [True, True]


# --- hostile or malformed deliveries ----------------------------------------------------


async def _stored(app: Any) -> list[str]:
    async with app[DB].read() as conn:
        query = sa.select(messages.c.external_id).where(messages.c.direction == "in")
        return list((await conn.execute(query.order_by(messages.c.id))).scalars())


async def test_another_pages_entries_and_other_products_are_dropped(
    meta_hub: TestClient, channel: MessengerChannel, caplog: pytest.LogCaptureFixture
) -> None:
    """Spaces may share one Meta app (one secret): only this channel's page is taken."""
    url, app = f"/webhooks/{channel.id}", meta_hub.server.app
    theirs = page(msg("m1", text="for the other space"))
    theirs["entry"][0]["id"] = OTHER_PAGE
    instagram = {**page(msg("m2", text="an Instagram DM")), "object": "instagram"}
    no_object = {"entry": page(msg("m3", text="no object"))["entry"]}
    for body in (theirs, instagram, no_object):
        raw, headers = signed(body)
        assert (await meta_hub.post(url, data=raw, headers=headers)).status == 200
    assert await count(app, messages) == 0 and await count(app, contacts) == 0

    mixed = page(msg("m4", text="ours"))
    mixed["entry"][:0] = [
        {"id": OTHER_PAGE, "time": 1, "messaging": [msg("m5", text="theirs")]},
        {"id": int(OTHER_PAGE), "time": 1, "messaging": [msg("m6", text="theirs")]},
        {"time": 1, "messaging": [msg("m7", text="no page")]},
    ]
    raw, headers = signed(mixed)
    assert (await meta_hub.post(url, data=raw, headers=headers)).status == 200
    assert await _stored(app) == ["m4"]

    caplog.clear()
    with caplog.at_level("INFO"):
        assert channel.parse(theirs) == []
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


MALFORMED: list[Any] = [
    {"object": "page", "entry": None},
    {"object": "page", "entry": "x"},
    {"object": "page", "entry": {"id": PAGE}},
    {"object": "page", "entry": [None, 1, "x", [], {"id": PAGE, "messaging": None}]},
    {"object": "page", "entry": [{"id": PAGE, "messaging": msg("m1", text="a dict")}]},
    {"object": "page", "entry": [{"id": PAGE, "messaging": [None, 5, "x", []]}]},
    page(msg("m1", text=5)),
    page(msg(5, text="mid is a number")),
    page({**msg("m1", text="hi"), "sender": {"id": {"x": 1}}}),
    page({**msg("m1", text="hi"), "sender": {"id": True}}),
    page({**msg("m1", text="hi"), "timestamp": 10**30}),
    page({**msg("m1", text="hi"), "timestamp": float("inf")}),
    page({**msg("m1", text="hi"), "timestamp": 1e308}),
    page({**msg("m1", text="hi"), "message": "hi"}),
    page({"sender": {"id": PSID}, "timestamp": 1, "read": {"watermark": 10**30}}),
    page({"sender": {"id": PSID}, "timestamp": 1, "postback": {"payload": 5}}),
    page({"sender": {"id": PSID}, "timestamp": [1], "postback": {"payload": "P"}}),
    page({"sender": {"id": PSID}, "timestamp": 1, "delivery": {"mids": "m_OUT1"}}),
    page(msg("m1", attachments="x")),
    page(msg("m1", attachments=[{"type": "location", "payload": {"coordinates": None}}])),
    page(msg("m1", attachments=[{"type": "image", "payload": {"url": 5}}])),
    [page(msg("m1", text="a list around it"))],
    "page",
    10**30,
    None,
]


async def test_malformed_deliveries_are_200_and_store_nothing(
    meta_hub: TestClient, channel: MessengerChannel
) -> None:
    """A 4xx or 5xx makes Meta redeliver forever: what cannot be understood is dropped."""
    for n, body in enumerate(MALFORMED):
        raw, headers = signed(body)
        resp = await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)
        assert resp.status == 200, (n, body, await resp.text())
    app = meta_hub.server.app
    assert await count(app, messages) == 0 and await count(app, contacts) == 0


async def test_a_malformed_item_keeps_its_neighbours(
    meta_hub: TestClient, channel: MessengerChannel
) -> None:
    body = page({**msg("m1", text="hi"), "timestamp": 10**30}, msg("m2", text="fine"))
    body["entry"][:0] = [None, {"id": PAGE, "messaging": "x"}]
    raw, headers = signed(body)
    assert (await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 200
    assert await _stored(meta_hub.server.app) == ["m2"]


def test_parse_is_total_whatever_is_wrong_wherever(channel: MessengerChannel) -> None:
    located = {
        "type": "location",
        "title": "Home",
        "payload": {"coordinates": {"lat": 1, "long": 2}},
    }
    first = msg("m1", text="hello", attachments=[located])
    reaction = {
        "sender": {"id": PSID},
        "timestamp": 9,
        "reaction": {"mid": "m_OUT1", "action": "react", "emoji": "x"},
    }
    payload = page(first, msg("m2", text="second"), reaction)
    for at, broken in mutations(payload):
        try:
            events = channel.parse(broken)
        except Exception as exc:  # the assertion says where
            raise AssertionError(f"{at} = {broken!r}: {exc!r}") from exc
        assert isinstance(events, list)
        if at[:4] == ("entry", 0, "messaging", 0) and at != ("entry", 0, "messaging", 0):
            assert "m2" in [getattr(e, "external_id", None) for e in events], at
    assert len(channel.parse(payload)) == 3


async def _is(get: Any, expected: object) -> bool:
    return await get() == expected
