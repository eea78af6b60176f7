"""WhatsApp Cloud API: every message kind in, statuses, buttons/lists out, the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.errors import PermanentFailure, RetryLater
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
from channels.meta import delivery_error
from channels.whatsapp import WhatsAppChannel
from tests.channels.conftest import meta_channel, signed
from tests.channels.malformed import mutations
from tests.conftest import count, eventually
from tests.fakes.graph import FakeGraph

NUMBER_ID = "3003"
OTHER_NUMBER_ID = "9003"  # another space's number, on the same Meta app
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


async def test_pair_rate_limit_waits_at_least_six_seconds(
    graph: FakeGraph, channel: WhatsAppChannel
) -> None:
    """One message every 6 s from a number to the same user: sooner meets the same error."""
    graph.fail(400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit")
    out = Outbound(message_id=1, conversation_id=1, recipient=WA_ID, parts=(TextPart(text="x"),))
    with pytest.raises(RetryLater) as caught:
        await channel.send(out)
    assert caught.value.after >= 6 and "one every 6 seconds" in str(caught.value)


async def test_a_proxys_html_error_page_is_retried_not_a_crash(
    graph: FakeGraph, channel: WhatsAppChannel
) -> None:
    graph.fail_raw(502, "<html><body>Bad Gateway</body></html>")
    graph.fail_raw(400, "<html>Bad Request</html>")
    out = Outbound(message_id=1, conversation_id=1, recipient=WA_ID, parts=(TextPart(text="x"),))
    with pytest.raises(RetryLater):
        await channel.send(out)
    with pytest.raises(PermanentFailure, match="HTTP 400"):
        await channel.send(out)


@pytest.mark.parametrize(
    ("status", "code", "at_least", "at_most"),
    [
        (400, 131056, 6, 60),  # pair rate limit
        (400, 130429, 1, 60),  # the number's throughput (a second's worth)
        (400, 131048, 600, None),  # spam rate limit: quality, lifts in hours not seconds
        (400, 80007, 60, None),  # the business account's hourly rate limit
        (400, 4, 60, None),  # the app's request limit (rolling hour)
        (400, 17, 60, None),  # the user's
        (400, 32, 60, None),  # the page's
        (400, 613, 60, None),  # calls within one hour
        (429, 999, 30, None),  # a 429 of any code
        (500, 2, 1, 60),  # Meta unavailable
        (400, 131000, 1, 60),  # something went wrong
        (400, "131056", 6, 60),  # a code passed on as a string
    ],
)
def test_meta_throttles_map_to_waits_from_metas_docs(
    status: int, code: Any, at_least: float, at_most: float | None
) -> None:
    error = delivery_error(status, {"error": {"code": code, "message": "slow down"}})
    assert isinstance(error, RetryLater)
    assert error.after >= at_least and (at_most is None or error.after <= at_most)


def test_metas_estimate_of_when_access_returns_is_honoured() -> None:
    usage = (
        '{"123": [{"type": "whatsapp", "call_count": 100, "estimated_time_to_regain_access": 10}]}'
    )
    error = delivery_error(400, {"error": {"code": 80007}}, {"X-Business-Use-Case-Usage": usage})
    assert isinstance(error, RetryLater) and error.after == 600
    for broken in (
        "not json",
        "[]",
        '{"1": 5}',
        '{"1": [{"estimated_time_to_regain_access": "x"}]}',
    ):
        error = delivery_error(400, {"error": {"code": 4}}, {"X-Business-Use-Case-Usage": broken})
        assert isinstance(error, RetryLater) and error.after == 60


@pytest.mark.parametrize(
    "body", [None, "x", [], {"error": "x"}, {"error": {"code": True}}, {"error": {"code": [1]}}]
)
def test_a_malformed_error_body_is_a_failure_not_a_crash(body: Any) -> None:
    assert isinstance(delivery_error(400, body), PermanentFailure)
    assert isinstance(delivery_error(503, body), RetryLater)


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


# --- hostile or malformed deliveries ----------------------------------------------------


async def _stored(app: Any) -> list[str]:
    async with app[DB].read() as conn:
        query = sa.select(messages.c.external_id).where(messages.c.direction == "in")
        return list((await conn.execute(query.order_by(messages.c.id))).scalars())


def _for(number: Any, payload: dict[str, Any]) -> dict[str, Any]:
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = number
    return payload


async def test_another_numbers_and_products_deliveries_are_dropped(
    meta_hub: TestClient, channel: WhatsAppChannel, caplog: pytest.LogCaptureFixture
) -> None:
    """Spaces may share one Meta app (one secret): only this channel's number is taken."""
    url, app = f"/webhooks/{channel.id}", meta_hub.server.app
    theirs = _for(OTHER_NUMBER_ID, change([wa("w1", "text", text={"body": "other space"})]))
    as_page = {**change([wa("w2", "text", text={"body": "hi"})]), "object": "page"}
    no_object = {"entry": change([wa("w3", "text", text={"body": "hi"})])["entry"]}
    no_metadata = change([wa("w4", "text", text={"body": "hi"})])
    del no_metadata["entry"][0]["changes"][0]["value"]["metadata"]
    for body in (theirs, as_page, no_object, no_metadata, _for(None, change([wa("w5", "text")]))):
        raw, headers = signed(body)
        assert (await meta_hub.post(url, data=raw, headers=headers)).status == 200
    assert await count(app, messages) == 0 and await count(app, contacts) == 0

    mixed = change([wa("w6", "text", text={"body": "ours"})])
    other = _for(int(OTHER_NUMBER_ID), change([wa("w7", "text", text={"body": "theirs"})]))
    mixed["entry"][0]["changes"][:0] = other["entry"][0]["changes"]
    mixed["entry"][:0] = theirs["entry"]
    raw, headers = signed(mixed)
    assert (await meta_hub.post(url, data=raw, headers=headers)).status == 200
    assert await _stored(app) == ["w6"]

    caplog.clear()
    with caplog.at_level("INFO"):
        assert channel.parse(theirs) == []
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


WABA = "whatsapp_business_account"


def _with(**value: Any) -> dict[str, Any]:
    payload = change([wa("w1", "text", text={"body": "hi"})])
    payload["entry"][0]["changes"][0]["value"].update(value)
    return payload


MALFORMED: list[Any] = [
    {"object": "page", "entry": None},
    {"object": WABA, "entry": None},
    {"entry": [{"changes": None}]},
    {"object": WABA, "entry": [{"changes": None}]},
    {"object": WABA, "entry": "x"},
    {"object": WABA, "entry": [None, 1, "x", [], {"changes": "x"}, {"changes": {"value": {}}}]},
    {"object": WABA, "entry": [{"changes": [None, 1, "x", {"value": None}, {"value": "x"}]}]},
    _with(metadata=None),
    _with(metadata="x"),
    _with(metadata={"phone_number_id": [NUMBER_ID]}),
    _with(messages=wa("w1", "text", text={"body": "a dict"})),
    _with(messages=[None, 5, "x", []], statuses="x"),
    _with(messages=[wa("w1", "text", text={"body": 5})]),
    _with(messages=[wa("w1", "text", text="hi")]),
    _with(messages=[wa(5, "text", text={"body": "id is a number"})]),
    _with(messages=[{**wa("w1", "text", text={"body": "hi"}), "from": 351}]),
    _with(messages=[{**wa("w1", "text", text={"body": "hi"}), "from": ["351"]}]),
    _with(messages=[{**wa("w1", "text", text={"body": "hi"}), "type": ["text"]}]),
    _with(messages=[{**wa("w1", "text", text={"body": "hi"}), "timestamp": 10**30}]),
    _with(messages=[{**wa("w1", "text", text={"body": "hi"}), "timestamp": "9" * 40}]),
    _with(messages=[{**wa("w1", "text", text={"body": "hi"}), "timestamp": float("inf")}]),
    _with(messages=[{**wa("w1", "text", text={"body": "hi"}), "timestamp": 1e308}]),
    _with(messages=[wa("w1", "location", location={"latitude": float("nan"), "longitude": 1})]),
    _with(messages=[wa("w1", "contacts", contacts="x")]),
    _with(
        messages=[wa("w1", "contacts", contacts=[{"name": {"formatted_name": "R"}, "phones": "x"}])]
    ),
    _with(messages=[wa("w1", "image", image="x")]),
    _with(messages=[wa("w1", "interactive", interactive={"button_reply": "x"})]),
    _with(statuses=[{"id": "wamid.OUT1", "status": "read", "errors": "x"}], messages=[]),
    _with(statuses=[{"id": "wamid.OUT1", "status": "failed", "errors": [5]}], messages=[]),
    [change([wa("w1", "text", text={"body": "a list around it"})])],
    WABA,
    10**30,
    None,
]


async def test_malformed_deliveries_are_200_and_store_nothing(
    meta_hub: TestClient, channel: WhatsAppChannel
) -> None:
    """A 4xx or 5xx makes Meta redeliver forever: what cannot be understood is dropped."""
    for n, body in enumerate(MALFORMED):
        raw, headers = signed(body)
        resp = await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)
        assert resp.status == 200, (n, body, await resp.text())
    app = meta_hub.server.app
    assert await count(app, messages) == 0 and await count(app, contacts) == 0


async def test_a_malformed_item_keeps_its_neighbours(
    meta_hub: TestClient, channel: WhatsAppChannel
) -> None:
    bad = {**wa("w1", "text", text={"body": "hi"}), "timestamp": 10**30}
    body = _with(
        messages=[bad, wa("w2", "text", text={"body": "fine"})],
        contacts=[None, "x", {"wa_id": ["x"]}, {"wa_id": WA_ID, "profile": "x"}],
    )
    body["entry"][0]["changes"][:0] = [None, {"value": "x"}]
    body["entry"][:0] = [None, {"changes": "x"}]
    raw, headers = signed(body)
    assert (await meta_hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 200
    assert await _stored(meta_hub.server.app) == ["w2"]


def test_parse_is_total_whatever_is_wrong_wherever(channel: WhatsAppChannel) -> None:
    card = {"name": {"formatted_name": "Rui"}, "phones": [{"phone": "+351"}]}
    status = {"id": "wamid.OUT1", "status": "failed", "errors": [{"code": 131047}]}
    payload = change(
        [
            wa("w1", "contacts", contacts=[card]),
            wa("w2", "text", text={"body": "second"}),
            wa("w3", "interactive", interactive={"button_reply": {"id": "Y", "title": "Yes"}}),
        ],
        statuses=[status],
    )
    messages_at = ("entry", 0, "changes", 0, "value", "messages")
    for at, broken in mutations(payload):
        try:
            events = channel.parse(broken)
        except Exception as exc:  # the assertion says where
            raise AssertionError(f"{at} = {broken!r}: {exc!r}") from exc
        assert isinstance(events, list)
        if at[:7] == (*messages_at, 0) and len(at) > 7:
            assert "w2" in [getattr(e, "external_id", None) for e in events], at
    assert len(channel.parse(payload)) == 4


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
