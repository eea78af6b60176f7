"""The satisfaction survey after a close (issue #24): asked in the conversation that was
closed, answered there, and no conversation opened for it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.clock import now
from bot.keys import DB, SENDER
from bot.storage.tables import contacts, conversations, flow_runs
from surveys.clock import FlowClock
from tests.conftest import count
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_assignment import latest
from tests.handlers.test_handover import agent, say, space_settings
from tests.surveys.test_engine import add_survey, manager, sent_texts  # noqa: F401

CSAT = """
name: csat
expire_after_hours: 24
steps:
  - id: score
    type: question
    text: How did we do?
    answer: rating
completed_text: Thank you!
"""


@pytest.fixture
async def csat(client: TestClient, app: Application, manager: dict[str, str]) -> int:  # noqa: F811
    survey = await add_survey(client, manager, CSAT)
    await space_settings(app, csat_survey="csat")
    return survey


async def close(client: TestClient, manager: dict[str, str], conversation: int) -> Any:  # noqa: F811
    resp = await client.post(f"/api/v1/conversations/{conversation}/close", headers=manager)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def runs(app: Application) -> list[Any]:
    async with app[DB].read() as conn:
        return list(await conn.execute(sa.select(flow_runs).order_by(flow_runs.c.id)))


async def test_n_closes_leave_n_conversations_and_each_answer_lands_on_its_own(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],  # noqa: F811
    csat: int,
) -> None:
    bea = await agent(app, "Bea", "online")
    closed = []
    for n in range(1, 4):
        await say(client, app, echo, "human")
        conversation = await latest(app, "u")
        assert conversation.assignee_id == bea
        before = len(echo.sent)
        assert (await close(client, manager, conversation.id))["status"] == "closed"
        assert await sent_texts(app, echo, before) == ["How did we do?"]
        assert await count(app, conversations) == n  # asked where it was closed
        asked = await latest(app, "u")
        assert asked.id == conversation.id and asked.closed_at is not None
        assert await say(client, app, echo, str(n + 2)) == ["Thank you!"]
        done = await latest(app, "u")
        assert (done.id, done.status) == (conversation.id, "closed")
        closed.append(conversation.id)
    assert await count(app, conversations) == 3
    answered = await runs(app)
    assert [(r.conversation_id, r.answers, r.status) for r in answered] == [
        (closed[0], {"score": 3}, "completed"),
        (closed[1], {"score": 4}, "completed"),
        (closed[2], {"score": 5}, "completed"),
    ]
    # the contact's next free message opens a new conversation, with the bot
    assert (await say(client, app, echo, "pricing"))[-1].startswith("Starter is free")
    assert await count(app, conversations) == 4
    async with app[DB].read() as conn:
        status = (await conn.execute(sa.select(contacts.c.status))).scalar_one()
    assert status == "open"


async def test_the_survey_goes_only_where_a_person_talked_unless_the_space_says_so(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],  # noqa: F811
    csat: int,
) -> None:
    await say(client, app, echo, "hello")
    before = len(echo.sent)
    await close(client, manager, (await latest(app, "u")).id)
    assert await sent_texts(app, echo, before) == []  # only the bot talked with them
    assert await runs(app) == []
    await space_settings(app, csat_survey="csat", csat_bot_conversations=True)
    await say(client, app, echo, "hello")
    before = len(echo.sent)
    await close(client, manager, (await latest(app, "u")).id)
    assert await sent_texts(app, echo, before) == ["How did we do?"]
    assert await count(app, conversations) == 2


async def test_closing_twice_asks_once_and_the_agent_cannot_write_into_it(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],  # noqa: F811
    csat: int,
) -> None:
    await agent(app, "Bea", "online")
    await say(client, app, echo, "human")
    conversation = (await latest(app, "u")).id
    before = len(echo.sent)
    await close(client, manager, conversation)
    await close(client, manager, conversation)
    assert await sent_texts(app, echo, before) == ["How did we do?"]
    assert len(await runs(app)) == 1
    late = await client.post(
        f"/api/v1/conversations/{conversation}/messages", json={"text": "hi?"}, headers=manager
    )
    assert late.status == 400 and "closed" in (await late.json())["detail"]


async def test_an_unanswered_survey_expires_and_the_conversation_stays_closed(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],  # noqa: F811
    csat: int,
) -> None:
    await agent(app, "Bea", "online")
    await say(client, app, echo, "human")
    conversation = (await latest(app, "u")).id
    await close(client, manager, conversation)
    clock = FlowClock(app[DB], app[SENDER].notify)
    assert await clock.tick(now() + timedelta(hours=25)) == (0, 1)
    expired = await latest(app, "u")
    assert (expired.id, expired.status) == (conversation, "closed")
    assert [r.status for r in await runs(app)] == ["expired"]
    assert (await say(client, app, echo, "pricing"))[-1].startswith("Starter is free")
    assert await count(app, conversations) == 2


async def test_the_inbox_shows_it_closed_while_its_survey_waits(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    manager: dict[str, str],  # noqa: F811
    csat: int,
) -> None:
    await agent(app, "Bea", "online")
    await say(client, app, echo, "human")
    conversation = (await latest(app, "u")).id
    await close(client, manager, conversation)
    resp = await client.get(f"/api/v1/conversations/{conversation}", headers=manager)
    shown = await resp.json()
    assert shown["status"] == "closed" and shown["closed_at"] is not None

    async def listed(status: str) -> list[int]:
        resp = await client.get("/api/v1/conversations", params={"status": status}, headers=manager)
        return [c["id"] for c in (await resp.json())["items"]]

    assert await listed("open") == []
    assert await listed("closed") == [conversation]
