"""Routing through the real pipeline: welcome on a new conversation, handover silences the bot.

Covers `bot.pipeline.handling`, `bot.pipeline.bots`.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.app import create_app
from bot.keys import CHANNELS, DB
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.tables import conversations, messages, work_items
from handlers.bot import NOT_UNDERSTOOD_TEXT
from integrations.builtin_bot import SAMPLE_AGENT
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import add_channel, closed_within, count, eventually
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import say, state


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


@pytest.fixture
async def no_fallback_hub(
    aiohttp_client: Any, settings: Settings, plugins: Plugins, tmp_path: Path
) -> AsyncIterator[TestClient]:
    """The built-in bot on an agent without a fallback intent: a miss has nothing to say."""
    agent = tmp_path / "agent"
    shutil.copytree(SAMPLE_AGENT, agent)
    for path in (agent / "intents").glob("Default Fallback Intent*"):
        path.unlink()
    app = create_app(settings.model_copy(update={"agent_path": agent}), plugins)
    client = await aiohttp_client(app)
    yield client
    await closed_within(client, 15)


async def test_a_bot_reply_with_nothing_to_say_is_a_miss_not_silence(
    no_fallback_hub: TestClient,
) -> None:
    app = no_fallback_hub.server.app
    echo = await app[CHANNELS].get(await add_channel(app, "echo"))
    await say(no_fallback_hub, app, echo, "hello")
    assert await say(no_fallback_hub, app, echo, "zxqv wqzx") == [NOT_UNDERSTOOD_TEXT]
    assert (await state(app))[0] == "bot"
    got = await say(no_fallback_hub, app, echo, "qwzx vzxq")
    assert got[0] == NOT_UNDERSTOOD_TEXT and (await state(app))[0] == "waiting"
