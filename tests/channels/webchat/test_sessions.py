"""Session tokens and channel ids: nothing of one visitor or channel is reachable from another."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.keys import SETTINGS
from bot.storage.tables import messages
from channels.webchat.session import _signature, new_session, visitor_of
from tests.channels.webchat.widget import PNG, Visitor, upload
from tests.conftest import add_channel, count

KEY = b"k" * 32


def test_a_token_proves_its_visitor_on_its_channel_only() -> None:
    visitor_id, token = new_session(KEY, "webchat-a")
    assert visitor_of(KEY, "webchat-a", token) == visitor_id
    assert visitor_of(KEY, "webchat-b", token) is None
    assert visitor_of(b"other key", "webchat-a", token) is None


def test_a_colon_cannot_move_a_token_to_another_channel() -> None:
    """`webchat:a:b:v…` is what channel "a:b" signs for visitor "v…" and what channel
    "a" would sign for visitor "b:v…": the second must not be accepted."""
    visitor_id, token = new_session(KEY, "a:b")
    shifted = f"b:{visitor_id}.{_signature(KEY, 'a:b', visitor_id)}"
    assert token.split(".")[1] == shifted.split(".")[1]
    assert visitor_of(KEY, "a", shifted) is None


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        ".",
        "..",
        "v.x.y",
        "\ud800.\udc00",
        "\x00",
        "é" * 50,
        "v" + "0" * 24 + "." + "\u0661" * 43,  # Arabic-Indic digits are not base64
        "V" + "0" * 24 + "." + "A" * 43,
        " v" + "0" * 24 + "." + "A" * 43,
    ],
)
def test_malformed_tokens_prove_nothing_and_never_raise(token: str | None) -> None:
    assert visitor_of(KEY, "webchat-a", token) is None


async def test_a_garbled_stored_token_starts_a_fresh_session(
    client: TestClient, webchat_channel: str
) -> None:
    ws = await client.ws_connect(f"/webchat/ws?channel={webchat_channel}")
    await ws.send_str('{"type": "hello", "token": "\\ud800.\\u00e9\\u0000"}')
    session = await ws.receive_json(timeout=5)
    assert session["type"] == "session" and session["visitor"].startswith("v")
    assert (await ws.receive_json(timeout=5))["messages"] == []


@pytest.fixture
async def other_channel(app: web.Application) -> str:
    return await add_channel(app, "webchat")


async def test_nothing_of_one_channel_is_reachable_from_another(
    client: TestClient, app: web.Application, visitor: Visitor, other_channel: str
) -> None:
    await visitor.say("my order 1234", "c1")
    (reply,) = await visitor.replies(1)
    uploaded = await upload(client, visitor.channel, visitor.token, PNG, "image/png")
    file_id = (await uploaded.json())["file_id"]

    elsewhere = Visitor(client, other_channel)
    assert await elsewhere.connect(visitor.token) == []  # no history through a foreign token
    assert elsewhere.visitor != visitor.visitor
    # the other channel's session can neither attach the file nor mark the reply read
    await elsewhere.ws.send_json(
        {"type": "message", "id": "x", "attachments": [{"file_id": file_id}]}
    )
    assert (await elsewhere.recv("error"))["code"] == "invalid_message"
    await elsewhere.ws.send_json({"type": "receipt", "message_id": reply["id"], "status": "read"})
    await asyncio.sleep(0.2)
    assert await count(app, messages, messages.c.status == "read") == 0
    # the first channel's token does not upload to the second channel
    foreign = await upload(client, other_channel, visitor.token, PNG, "image/png")
    assert foreign.status == 401
    # and the second channel's token does not upload as the first channel's visitor
    assert elsewhere.token is not None
    assert visitor_of(app[SETTINGS].signing_key(), visitor.channel, elsewhere.token) is None
