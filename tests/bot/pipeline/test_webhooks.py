"""POST /webhooks/{channel_id}: verify -> parse -> one commit -> 200 -> worker -> sender.

Covers `bot.errors`.
"""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB
from bot.storage.tables import contacts, messages, work_items
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel, sign


def body(*items: dict[str, object]) -> bytes:
    return json.dumps({"messages": list(items)}).encode()


async def post(client: TestClient, channel: str, raw: bytes, signature: str | None = None):
    headers = {"X-Echo-Signature": signature if signature is not None else sign(raw)}
    return await client.post(f"/webhooks/{channel}", data=io.BytesIO(raw), headers=headers)


async def test_signed_message_is_stored_and_answered_by_the_bot(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    resp = await post(client, echo.id, body({"id": "m1", "from": "u1", "text": "pricing"}))
    assert resp.status == 200
    assert await resp.json() == {"events": 1, "stored": 1, "duplicates": 0}
    assert await count(app, messages, messages.c.direction == "in") == 1

    await eventually(lambda: _async(len(echo.sent) >= 2))
    texts = [p.text for o in echo.sent for p in o.parts if p.type == "text"]
    assert texts[0].startswith("Hi! I'm the ChanCenter assistant")  # a new conversation: WELCOME
    assert texts[1].startswith("Starter is free")  # then the answer to the question
    assert all(o.recipient == "u1" for o in echo.sent)
    await eventually(lambda: _zero(app))


async def test_redelivery_is_a_no_op(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    raw = body({"id": "m1", "from": "u1", "text": "hello"})
    assert (await post(client, echo.id, raw)).status == 200
    second = await post(client, echo.id, raw)
    assert await second.json() == {"events": 1, "stored": 0, "duplicates": 1}
    assert await count(app, messages, messages.c.direction == "in") == 1
    await eventually(lambda: _async(len(echo.sent) == 1))


async def test_wrong_or_missing_signature_is_401_and_stores_nothing(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    raw = body({"id": "m1", "from": "u1", "text": "hi"})
    for signature in ("sha256=" + "0" * 64, ""):
        resp = await post(client, echo.id, raw, signature)
        assert resp.status == 401
        assert "X-Echo-Signature" in (await resp.json())["detail"]
    assert await count(app, messages) == 0
    assert await count(app, contacts) == 0


async def test_non_json_body_is_400(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    resp = await post(client, echo.id, b"{not json")
    assert resp.status == 400
    assert (await resp.json())["detail"] == "body is not JSON"
    assert await count(app, messages) == 0


async def test_oversized_body_is_413(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    raw = body({"id": "m1", "from": "u1", "text": "x" * 1_100_000})
    resp = await post(client, echo.id, raw)
    assert resp.status == 413
    assert await count(app, messages) == 0


async def test_unknown_channel_is_404(client: TestClient, app: Application) -> None:
    resp = await client.post("/webhooks/nope", data=b"{}")
    assert resp.status == 404
    assert "nope" in (await resp.json())["detail"]


async def test_web_chat_channel_takes_no_webhooks(client: TestClient, webchat_channel: str) -> None:
    resp = await client.post(f"/webhooks/{webchat_channel}", data=b"{}")
    assert resp.status == 401


async def test_malformed_item_does_not_drop_its_neighbours(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    raw = body(
        {"id": "a", "from": "u1", "text": "one"},
        {"id": "b", "from": "u1"},  # no text
        {"id": "c", "from": "u2", "text": "three"},
    )
    resp = await post(client, echo.id, raw)
    assert await resp.json() == {"events": 2, "stored": 2, "duplicates": 0}
    assert await count(app, messages, messages.c.direction == "in") == 2


async def test_per_conversation_order_is_kept(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    for n, text in enumerate(["opening hours", "pricing", "opening hours", "pricing"]):
        await post(client, echo.id, body({"id": f"m{n}", "from": "u1", "text": text}))
    await eventually(lambda: _async(len(echo.sent) == 5))  # welcome + 4 answers
    firsts = [o.parts[0].text[:8] for o in echo.sent]
    assert firsts == ["Hi! I'm ", "We're op", "Starter ", "We're op", "Starter "]
    assert [o.message_id for o in echo.sent] == sorted(o.message_id for o in echo.sent)
    assert await count(app, work_items) == 0


async def _async(value: object) -> object:
    return value


async def _zero(app: Application) -> bool:
    return await count(app, work_items) == 0


async def test_hostile_bodies_are_refused_without_a_trace_and_store_nothing(
    client: TestClient, app: Application, echo: EchoChannel, caplog: pytest.LogCaptureFixture
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # under the size limit; json.loads recurses
    refused = {
        deep: "body nests deeper than 64 levels",
        b"\xff\xfe\x00garbage": "body is not JSON",
        b"": "body is not JSON",
        '{"messages": [{"id": "1", "from": "u", "text": "caf\xe9"}]}'.encode("latin-1"): (
            "body is not UTF-8 text"
        ),
    }
    for raw, detail in refused.items():
        resp = await post(client, echo.id, raw)
        assert resp.status == 400, raw[:20]
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["detail"] == detail
    # well-formed JSON of the wrong shape is the platform's: acknowledged, nothing kept
    for raw in (b"null", b"42", b'"text"', b"[1, 2]", b'{"messages": {"id": 1}}', b"1e999999"):
        resp = await post(client, echo.id, raw)
        assert resp.status == 200, raw
        assert (await resp.json())["events"] == 0
    assert await count(app, messages) == 0
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_stored_text_keeps_its_code_points_but_never_nul_or_lone_surrogates(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    kept = "\u202egnp.exe \U0001f469\u200d\U0001f4bb \u0001\u001b[31m"  # bidi, ZWJ, controls
    raw = json.dumps(
        {
            "messages": [
                {"id": "1", "from": "u", "text": kept, "name": "Eve\u202e"},
                {"id": "2", "from": "u", "text": "a\u0000b\ud800c", "name": "Eve\u202e"},
            ]
        }
    ).encode()
    assert b"\\u0000" in raw and b"\\ud800" in raw
    resp = await post(client, echo.id, raw)
    assert await resp.json() == {"events": 2, "stored": 2, "duplicates": 0}
    async with app[DB].read() as conn:
        stored = (
            (
                await conn.execute(
                    sa.select(messages.c.parts)
                    .where(messages.c.direction == "in")
                    .order_by(messages.c.id)
                )
            )
            .scalars()
            .all()
        )
        name = (await conn.execute(sa.select(contacts.c.name))).scalar_one()
    assert [p[0]["text"] for p in stored] == [kept, "ab\ufffdc"]
    assert name == "Eve\u202e"
