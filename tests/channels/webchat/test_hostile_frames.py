"""Hostile websocket frames: each is refused on its own, nothing is stored, nobody else notices."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from bot.storage.tables import contacts, messages
from channels.webchat import server
from channels.webchat.frames import MAX_TEXT
from channels.webchat.server import MAX_FRAME
from tests.channels.webchat.widget import Visitor
from tests.conftest import count, eventually


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("web-chat frame refused")]


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.fixture
async def neighbour(client: TestClient, webchat_channel: str) -> Visitor:
    """Another visitor, connected all along: hostile frames must never reach them."""
    v = Visitor(client, webchat_channel)
    await v.connect()
    return v


async def still_served(app: web.Application, neighbour: Visitor, stored_before: int) -> None:
    ack = await neighbour.say("hi", f"n{stored_before}")
    assert ack["message_id"]
    assert await count(app, messages, messages.c.direction == "in") == stored_before + 1


DEEP = "[" * 30_000 + "]" * 30_000  # fits in a frame, far deeper than anything real


HOSTILE = [
    "not json",
    "",
    "{",
    '{"type": "message", "id": "x", "text": "hi"',
    "42",
    "-1e999",
    '"hello"',
    "null",
    "true",
    "[]",
    '[{"type": "message", "id": "x", "text": "hi"}]',
    DEEP,
    '{"a":' * 10_000 + "1" + "}" * 10_000,
    '{"type": "explode"}',
    '{"type": 5}',
    '{"type": null}',
    '{"type": "\\ud800"}',
    '{"type": "message", "id": "x", "text": 5}',
    '{"type": "message", "id": 5, "text": "hi"}',
    '{"type": "message", "id": "x", "text": ["hi"]}',
    '{"type": "message", "id": "x", "attachments": "file"}',
    '{"type": "message", "id": "x", "attachments": [{"file_id": 1}]}',
    json.dumps({"type": "message", "id": "x", "text": "a" * (MAX_TEXT + 1)}),
    '{"type": "postback", "id": "x", "payload": {"a": 1}}',
    '{"type": "hello", "token": 5}',
    '{"type": "hello", "language": 5}',
    '{"type": "hello", "language": "' + "a" * 101 + '"}',
    '{"type": "receipt", "message_id": "1", "status": "read"}',
    '{"type": "receipt", "message_id": true, "status": "read"}',
    '{"type": "receipt", "message_id": 1.5, "status": "read"}',
    '{"type": "receipt", "message_id": 1e400, "status": "read"}',
    '{"type": "receipt", "message_id": 0, "status": "read"}',
    '{"type": "receipt", "message_id": -1, "status": "read"}',
    f'{{"type": "receipt", "message_id": {2**63}, "status": "read"}}',
    f'{{"type": "receipt", "message_id": {2**70}, "status": "read"}}',
    '{"type": "receipt", "message_id": ' + "9" * 5000 + ', "status": "read"}',
    '{"type": "receipt", "message_id": 1, "status": "owned"}',
]


async def test_each_hostile_frame_gets_an_error_frame_and_nothing_else(
    app: web.Application,
    visitor: Visitor,
    neighbour: Visitor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One socket takes them all in turn: none is stored, ends the socket or logs more
    than one line; the visitor's next message and the neighbour's still go through."""
    caplog.set_level(logging.INFO)
    for frame in HOSTILE:
        caplog.clear()
        await visitor.ws.send_str(frame)
        error = await visitor.recv("error")
        assert error["code"] == "invalid_frame" and error["detail"], frame[:80]
        assert len(error["detail"]) < 300, frame[:80]  # says what is wrong, no echo
        assert len(refusals(caplog)) == 1, frame[:80]
        no_traceback(caplog)
    assert await count(app, messages) == 0
    assert (await visitor.say("hi", "ok"))["message_id"]
    await still_served(app, neighbour, 1)


async def test_binary_frame_gets_an_error_frame(
    app: web.Application, visitor: Visitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await visitor.ws.send_bytes(b'{"type": "message", "id": "x", "text": "hi"}')
    assert (await visitor.recv("error"))["code"] == "invalid_frame"
    assert await count(app, messages) == 0
    assert len(refusals(caplog)) == 1
    no_traceback(caplog)
    assert (await visitor.say("hi", "ok"))["message_id"]


@pytest.mark.parametrize(
    ("data", "opcode", "code"),
    [
        ("x" * (MAX_FRAME + 1), WSMsgType.TEXT, 1009),  # oversized
        ("[" * 100_000 + "]" * 100_000, WSMsgType.TEXT, 1009),  # 100,000 levels deep
        (b"\xff\xfe{}", WSMsgType.TEXT, 1007),  # a text frame that is not UTF-8
    ],
    ids=["oversized", "100k-levels", "not-utf8"],
)
async def test_frames_the_socket_cannot_carry_close_it_with_a_clear_code(
    app: web.Application,
    visitor: Visitor,
    neighbour: Visitor,
    caplog: pytest.LogCaptureFixture,
    data: str | bytes,
    opcode: WSMsgType,
    code: int,
) -> None:
    caplog.set_level(logging.INFO)
    raw = data.encode() if isinstance(data, str) else data
    await visitor.ws.send_frame(raw, opcode)
    closing = await visitor.ws.receive(timeout=5)
    assert closing.type == WSMsgType.CLOSE and closing.data == code
    await eventually(lambda: len(refusals(caplog)) == 1)
    await asyncio.sleep(0.1)  # a second line or a traceback would come now
    assert len(refusals(caplog)) == 1
    no_traceback(caplog)
    assert await count(app, messages) == 0
    await still_served(app, neighbour, 0)


async def test_out_of_range_receipt_in_a_burst_spares_its_neighbours(
    client: TestClient,
    app: web.Application,
    webchat_channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue #13: a receipt for message 2**70 made every group commit of the burst fail
    with OverflowError, and killed the sender's socket."""
    caplog.set_level(logging.INFO)
    crowd = [Visitor(client, webchat_channel) for _ in range(8)]
    await asyncio.gather(*(v.connect() for v in crowd))
    rogue = crowd[3]

    async def burst(v: Visitor) -> None:
        for n in range(3):
            if v is rogue and n == 1:
                frame: dict[str, Any] = {"type": "receipt", "message_id": 2**70, "status": "read"}
            else:
                frame = {"type": "message", "id": f"m{n}", "text": f"hello {n}"}
            await v.ws.send_json(frame)

    await asyncio.gather(*(burst(v) for v in crowd))
    acks = await asyncio.gather(*(collect(v, 3 if v is not rogue else 2) for v in crowd))
    assert all(a["message_id"] for frames in acks for a in frames if a["type"] == "ack")
    errors = [f for f in await collect_rest(rogue) if f["type"] == "error"]
    errors += [f for frames in acks for f in frames if f["type"] == "error"]
    assert [e["code"] for e in errors] == ["invalid_frame"]
    assert await count(app, messages, messages.c.direction == "in") == 3 * 8 - 1
    no_traceback(caplog)
    assert (await rogue.say("still here", "later"))["message_id"]


async def collect(v: Visitor, acks: int) -> list[dict[str, Any]]:
    """Frames until `acks` acks arrived (replies from the bot may come in between)."""
    frames: list[dict[str, Any]] = []
    while sum(f["type"] == "ack" for f in frames) < acks:
        frames.append(await v.recv())
    return frames


async def collect_rest(v: Visitor) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while True:
        try:
            frames.append(await v.recv(timeout=0.5))
        except TimeoutError:
            return frames


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("before\x00after", "beforeafter"),
        ("half a pair: \ud83d!", "half a pair: \ufffd!"),
        ("lone low \udc00 and NUL \x00 together", "lone low \ufffd and NUL  together"),
        # kept exactly: bidi controls and ZWJ sequences are text, shown safely elsewhere
        ("\u202eevil.exe\u202c \u2066isolated\u2069", "\u202eevil.exe\u202c \u2066isolated\u2069"),
        ("family \U0001f469\u200d\U0001f469\u200d\U0001f467", None),
        ("flag \U0001f3f3\ufe0f\u200d\U0001f308 and e\u0301", None),
    ],
    ids=["nul", "high-surrogate", "low-surrogate-and-nul", "bidi", "zwj", "zwj-flag"],
)
async def test_visitor_text_is_stored_cleaned_and_echoed_back(
    client: TestClient,
    app: web.Application,
    visitor: Visitor,
    caplog: pytest.LogCaptureFixture,
    sent: str,
    stored: str | None,
) -> None:
    expected = sent if stored is None else stored
    # json.dumps writes lone surrogates and NUL as \u escapes, as a browser's JSON would
    await visitor.ws.send_str(json.dumps({"type": "message", "id": "t1", "text": sent}))
    assert (await visitor.recv("ack"))["message_id"]
    await visitor.ws.send_str(
        json.dumps({"type": "postback", "id": "p1", "payload": sent, "title": sent})
    )
    assert (await visitor.recv("ack"))["message_id"]
    again = Visitor(client, visitor.channel)
    history = await again.connect(visitor.token)
    inbound = [m for m in history if m["direction"] == "in"]
    assert inbound[0]["parts"] == [{"type": "text", "text": expected}]
    assert expected in json.dumps(inbound[1]["parts"], ensure_ascii=False)
    no_traceback(caplog)


async def test_a_failure_storing_one_frame_leaves_the_socket_open(
    app: web.Application,
    visitor: Visitor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server-side failure (the database, a bug) is ours: the visitor is told to resend,
    and the socket stays."""
    real = server.accept
    calls = 0

    async def flaky(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database went away")
        return await real(*args)

    monkeypatch.setattr(server, "accept", flaky)
    await visitor.ws.send_json({"type": "message", "id": "m1", "text": "hi"})
    error = await visitor.recv("error")
    assert error["code"] == "server_error" and error["id"] == "m1"
    assert [r.getMessage() for r in caplog.records if r.exc_info] == ["web-chat frame failed"]
    assert (await visitor.say("hi", "m1"))["message_id"]  # the resend is stored
    assert await count(app, messages, messages.c.direction == "in") == 1


@pytest.mark.parametrize(
    ("language", "stored"),
    [("de-DE-u-co-phonebk", "de-DE"), ("zh-Hant-TW", "zh-Hant-TW"), ("<b>en</b>", None)],
)
async def test_an_odd_browser_language_never_costs_the_session(
    client: TestClient, app: web.Application, webchat_channel: str, language: str, stored: str
) -> None:
    """A long tag (navigator.language may carry extensions) used to refuse the hello, so
    the widget never got a session; the column holds 16 characters."""
    ws = await client.ws_connect(f"/webchat/ws?channel={webchat_channel}")
    await ws.send_json({"type": "hello", "language": language})
    assert (await ws.receive_json(timeout=5))["type"] == "session"
    assert (await ws.receive_json(timeout=5))["type"] == "history"
    await ws.send_json({"type": "message", "id": "m", "text": "hi"})
    assert (await ws.receive_json(timeout=5))["type"] == "ack"
    column = contacts.c.language
    assert await count(app, contacts, column.is_(None) if stored is None else column == stored) == 1
