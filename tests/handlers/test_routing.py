"""Routing through the real pipeline: welcome on a new conversation, handover silences the bot."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB
from bot.storage.tables import conversations, messages, work_items
from tests.bot.test_webhooks import body, post
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel


async def drained(app: Application) -> bool:
    return await count(app, work_items) == 0


async def test_greeting_on_a_new_conversation_gets_one_welcome(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hello"}))
    await eventually(lambda: drained(app))
    await eventually(lambda: len(echo.sent) == 1)
    assert echo.sent[0].parts[0].text.startswith("Hi! I'm")


async def test_handover_hands_the_conversation_to_agents_and_the_bot_goes_silent(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))
    await post(client, echo.id, body({"id": "2", "from": "u", "text": "talk to a human"}))
    await eventually(lambda: drained(app))
    async with app[DB].read() as conn:
        handler = (await conn.execute(sa.select(conversations.c.handler))).scalar_one()
    assert handler == "waiting"  # nobody is online to take it
    await eventually(lambda: len(echo.sent) == 3)
    assert echo.sent[1].parts[0].text.startswith("Sure, I'm connecting you")
    assert "away right now" in echo.sent[2].parts[0].text

    await post(client, echo.id, body({"id": "3", "from": "u", "text": "pricing"}))
    await eventually(lambda: drained(app))
    assert await count(app, messages, messages.c.direction == "in") == 3
    assert await count(app, messages, messages.c.direction == "out") == 3  # no bot answer
