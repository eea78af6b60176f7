"""The web-chat transport over a real websocket: sessions, history, isolation, bad frames."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.tables import messages
from tests.channels.webchat.widget import Visitor, texts
from tests.conftest import add_channel, count, eventually


async def test_hi_gets_the_welcome_with_quick_replies(visitor: Visitor) -> None:
    ack = await visitor.say("hi", "c1")
    assert ack["message_id"] and ack["duplicate"] is False
    (reply,) = await visitor.replies(1)
    assert texts(reply)[0].startswith("Hi! I'm the ChanCenter assistant")
    buttons = [
        r["title"] for p in reply["parts"] if p["type"] == "quick_replies" for r in p["replies"]
    ]
    assert buttons == ["Opening hours", "Pricing", "Talk to a human"]

    await visitor.ws.send_json(
        {"type": "postback", "id": "c2", "payload": "Opening hours", "title": "Opening hours"}
    )
    await visitor.recv("ack")
    (hours,) = await visitor.replies(1)
    assert texts(hours)[0].startswith("We're open Monday to Friday")


async def test_reconnect_with_token_restores_history(client: TestClient, visitor: Visitor) -> None:
    await visitor.say("hi", "c1")
    await visitor.replies(1)
    await visitor.ws.close()

    again = Visitor(client, visitor.channel)
    history = await again.connect(visitor.token)
    assert again.visitor == visitor.visitor
    assert [m["direction"] for m in history] == ["in", "out"]
    assert history[0]["client_id"] == "c1"
    assert texts(history[1])[0].startswith("Hi! I'm")


async def test_resent_message_after_reconnect_is_not_duplicated(
    client: TestClient, app: web.Application, visitor: Visitor
) -> None:
    first = await visitor.say("hi", "same-id")
    await visitor.replies(1)
    again = Visitor(client, visitor.channel)
    await again.connect(visitor.token)
    second = await again.say("hi", "same-id")
    assert second["duplicate"] is True
    assert await count(app, messages, messages.c.direction == "in") == 1
    assert first["message_id"]


async def test_a_visitor_never_sees_another_visitors_conversation(
    client: TestClient, visitor: Visitor
) -> None:
    await visitor.say("my secret order 1234", "c1")
    await visitor.replies(1)

    stranger = Visitor(client, visitor.channel)
    assert await stranger.connect() == []
    assert stranger.visitor != visitor.visitor
    # a forged token (someone else's visitor id, wrong signature) gets a fresh session
    forged = Visitor(client, visitor.channel)
    assert await forged.connect(f"{visitor.visitor}.AAAA") == []
    assert forged.visitor != visitor.visitor
    # and replies to the first visitor never reach the stranger's socket
    await visitor.say("pricing", "c2")
    await visitor.replies(1)
    with pytest.raises(asyncio.TimeoutError):
        await stranger.ws.receive_json(timeout=0.3)


async def test_token_of_another_channel_is_refused(
    client: TestClient, app: web.Application, visitor: Visitor
) -> None:
    other = await add_channel(app, "webchat")
    elsewhere = Visitor(client, other)
    await elsewhere.connect(visitor.token)
    assert elsewhere.visitor != visitor.visitor


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_frame"),
        ('{"type": "message"}', "invalid_frame"),
        ('{"type": "message", "id": "x", "text": "hi", "admin": true}', "invalid_frame"),
        ('{"type": "message", "id": "../../etc", "text": "hi"}', "invalid_frame"),
        ('{"type": "message", "id": "x", "text": "   "}', "invalid_message"),
        ('{"type": "message", "id": "x", "attachments": [{"file_id": "nope"}]}', "invalid_message"),
        ('{"type": "explode"}', "invalid_frame"),
    ],
)
async def test_malformed_frames_get_an_error_frame_and_store_nothing(
    app: web.Application, visitor: Visitor, frame: str, code: str
) -> None:
    await visitor.ws.send_str(frame)
    error = await visitor.recv("error")
    assert error["code"] == code and error["detail"]
    assert await count(app, messages) == 0
    # the connection is still good
    assert (await visitor.say("hi", "ok"))["message_id"]


async def test_binary_frame_and_missing_hello(client: TestClient, webchat_channel: str) -> None:
    ws = await client.ws_connect(f"/webchat/ws?channel={webchat_channel}")
    await ws.send_json({"type": "message", "id": "x", "text": "hi"})
    assert (await ws.receive_json(timeout=5))["code"] == "no_session"
    await ws.send_bytes(b"\x00\x01")
    assert (await ws.receive_json(timeout=5))["code"] == "invalid_frame"


async def test_unknown_channel_websocket_is_404(client: TestClient) -> None:
    resp = await client.get("/webchat/ws?channel=missing")
    assert resp.status == 404


async def test_html_is_stored_and_sent_back_as_plain_text(visitor: Visitor) -> None:
    payload = "<img src=x onerror=alert(1)>"
    await visitor.say(payload, "xss")
    await visitor.replies(1)
    again = Visitor(visitor.client, visitor.channel)
    history = await again.connect(visitor.token)
    assert history[0]["parts"] == [{"type": "text", "text": payload}]


async def test_read_receipt_updates_status_only_for_own_messages(
    client: TestClient, app: web.Application, visitor: Visitor
) -> None:
    await visitor.say("hi", "c1")
    (reply,) = await visitor.replies(1)

    stranger = Visitor(client, visitor.channel)
    await stranger.connect()
    await stranger.ws.send_json({"type": "receipt", "message_id": reply["id"], "status": "read"})
    await asyncio.sleep(0.2)
    assert (
        await count(app, messages, messages.c.id == reply["id"], messages.c.status == "read") == 0
    )

    await visitor.ws.send_json({"type": "receipt", "message_id": reply["id"], "status": "read"})

    async def is_read() -> bool:
        return (
            await count(app, messages, messages.c.id == reply["id"], messages.c.status == "read")
            == 1
        )

    await eventually(is_read)


async def test_the_demo_page_snippet_points_at_the_public_url(
    aiohttp_client: Any, settings: Settings, plugins: Plugins
) -> None:
    public = settings.model_copy(update={"public_url": "https://chat.acme.example/"})
    client = await aiohttp_client(create_app(public, plugins))
    page = await (await client.get("/")).text()
    assert '&lt;script src="https://chat.acme.example/webchat/widget.js"' in page
    assert "localhost:8080" not in page
