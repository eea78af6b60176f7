"""An agent's acts on a conversation (`bot.workspace.agent_work`), the one implementation
behind the API, the Slack desk and the dashboard: a reply that claims, closing once, and
another space's conversation out of reach."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.errors import NotFound
from bot.keys import DB, ON_CLOSE
from bot.model import TextPart
from bot.storage.tables import conversations, messages
from bot.workspace.agent_work import AgentWork
from tests.bot.api.test_conversations import open_conversation, people  # noqa: F401
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import eventually
from tests.fakes.echo_channel import EchoChannel


async def state(app: Application, conversation_id: int) -> Any:
    async with app[DB].read() as conn:
        query = sa.select(conversations).where(conversations.c.id == conversation_id)
        return (await conn.execute(query)).one()


async def test_a_reply_that_claims_takes_the_waiting_conversation_once(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    conversation_id = await open_conversation(client, app, echo)
    waiting = await state(app, conversation_id)
    assert waiting.handler == "waiting"
    # the reports read these: people took part at the handover, nobody has written yet
    assert waiting.handed_over_at is not None and waiting.first_reply_at is None
    work = AgentWork(app, waiting.space_id)
    bea = people["admin_id"]
    first = await work.reply(conversation_id, bea, [TextPart(text="Bea here")], "k", claim=True)
    again = await work.reply(conversation_id, bea, [TextPart(text="Bea here")], "k", claim=True)
    assert first is not None and again is None  # the key makes a retry a no-op
    row = await state(app, conversation_id)
    assert (row.handler, row.assignee_id) == ("agent", bea)
    assert row.handed_over_at == waiting.handed_over_at  # set once
    assert row.first_reply_at is not None and row.first_reply_at >= row.handed_over_at
    await work.reply(conversation_id, bea, [TextPart(text="More")], "k2")
    assert (await state(app, conversation_id)).first_reply_at == row.first_reply_at
    await eventually(lambda: any(o.parts == (TextPart(text="Bea here"),) for o in echo.sent))
    note = await work.note(conversation_id, bea, "VIP")
    async with app[DB].read() as conn:
        direction = (
            await conn.execute(sa.select(messages.c.direction).where(messages.c.id == note))
        ).scalar_one()
    assert direction == "note"


async def test_closing_twice_closes_once_and_other_spaces_are_out_of_reach(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    conversation_id = await open_conversation(client, app, echo)
    space_id = (await state(app, conversation_id)).space_id
    heard: list[int] = []

    async def hook(_: Application, closed: int) -> None:
        heard.append(closed)

    app[ON_CLOSE].append(hook)
    with pytest.raises(NotFound):
        await AgentWork(app, space_id + 1).close(conversation_id)
    assert await AgentWork(app, space_id).close(conversation_id) is True
    assert await AgentWork(app, space_id).close(conversation_id) is False
    assert heard == [conversation_id]
    assert (await state(app, conversation_id)).status == "closed"


async def test_assigning_the_contact_takes_its_waiting_conversation(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    conversation_id = await open_conversation(client, app, echo)
    row = await state(app, conversation_id)
    work = AgentWork(app, row.space_id)
    bea = people["admin_id"]
    found = await work.assign_contact(row.contact_id, bea, None, bea)
    assert found == (bea, None, [conversation_id])
    after = await state(app, conversation_id)
    assert (after.handler, after.assignee_id) == ("agent", bea)
    with pytest.raises(NotFound):
        await AgentWork(app, row.space_id + 1).assign_contact(row.contact_id, bea, None, bea)


async def test_unassigning_a_bot_conversation_is_no_handover(
    client: TestClient,
    app: Application,
    echo: EchoChannel,
    people: dict[str, Any],  # noqa: F811
) -> None:
    """What the reports count as handed over: a person or a team's queue got it."""
    await post(client, echo.id, body({"id": "1", "from": "u1", "text": "hello"}))
    await eventually(lambda: len(echo.sent) >= 1)  # the bot answered
    async with app[DB].read() as conn:
        conversation_id = (await conn.execute(sa.select(conversations.c.id))).scalar_one()
    row = await state(app, conversation_id)
    assert (row.handler, row.handed_over_at) == ("bot", None)
    work = AgentWork(app, row.space_id)
    await work.assign(conversation_id, None, people["admin_id"])  # e.g. an automation's
    assert (await state(app, conversation_id)).handed_over_at is None
    await work.assign(conversation_id, people["admin_id"], people["admin_id"])
    assert (await state(app, conversation_id)).handed_over_at is not None
