"""When people take over: keywords, misses in a row, assignment, and the away reply."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import (
    assignments,
    conversations,
    outbox,
    space_members,
    spaces,
    users,
    work_items,
)
from bot.workspace.bootstrap import user_by_email
from handlers.handover import in_business_hours
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel

ids = itertools.count(1)
ALWAYS_CLOSED = {"days": {"mon": ["00:00", "00:01"]}, "holidays": []}


async def say(
    client: TestClient, app: Application, echo: EchoChannel, text: str, who: str = "u"
) -> list[str]:
    """The contact writes; returns the texts they got back for it."""
    before = len(echo.sent)
    await post(client, echo.id, body({"id": str(next(ids)), "from": who, "text": text}))
    # up to 15 s: under the whole suite's load the queue once took over 5 s to drain
    await eventually(lambda: _drained(app), timeout=15)
    await eventually(lambda: _sent(app), timeout=15)
    return [p.text for o in echo.sent[before:] for p in o.parts if hasattr(p, "text")]


async def state(app: Application) -> tuple[str, int | None]:
    async with app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(conversations.c.handler, conversations.c.assignee_id).order_by(
                    conversations.c.id.desc()
                )
            )
        ).first()
    return row.handler, row.assignee_id


async def agent(app: Application, name: str, availability: str, capacity: int | None = None) -> int:
    async with app[DB].write() as conn:
        user_id = await user_by_email(conn, name, f"{name.lower()}@example.com")
        await conn.execute(
            users.update().where(users.c.id == user_id).values(availability=availability)
        )
        await conn.execute(
            space_members.insert().values(
                space_id=app[DEFAULT_SPACE], user_id=user_id, role="agent", capacity=capacity
            )
        )
    return user_id


async def space_settings(app: Application, **values: Any) -> None:
    async with app[DB].write() as conn:
        await conn.execute(
            spaces.update().where(spaces.c.id == app[DEFAULT_SPACE]).values(settings=values)
        )


async def test_the_contact_asks_for_a_person_in_a_word(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello")
    assert (await state(app))[0] == "bot"
    got = await say(client, app, echo, "Human!")
    assert got[0] == "Sure, I'm getting a person to help you."
    assert "away right now" in got[1]  # nobody online
    assert await state(app) == ("waiting", None)
    assert await say(client, app, echo, "anyone?") == []  # the bot stays silent


async def test_two_misses_in_a_row_hand_over_and_a_hit_resets_the_count(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello")
    await say(client, app, echo, "qwzx vbnm")
    await say(client, app, echo, "pricing")
    await say(client, app, echo, "plkm jhgf")
    assert (await state(app))[0] == "bot"
    await say(client, app, echo, "zzxq wwer")
    assert (await state(app))[0] == "waiting"


async def test_round_robin_among_online_agents_within_capacity(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await agent(app, "Offline", "offline")
    bea = await agent(app, "Bea", "online")
    caio = await agent(app, "Caio", "online", capacity=1)
    given = []
    for contact in ("a", "b", "c"):
        await say(client, app, echo, "hello", who=contact)
        got = await say(client, app, echo, "human", who=contact)
        assert not any("away" in t for t in got)  # someone took it: no away reply
        given.append((await state(app))[1])
    # Bea first (lower id), then Caio (given nothing yet), then Bea: Caio is at capacity
    assert given == [bea, caio, bea]
    assert await count(app, assignments) == 3


async def test_away_reply_outside_hours_once_per_window_and_never_to_the_bot(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await agent(app, "Bea", "online")
    await space_settings(app, **ALWAYS_CLOSED, away_text="We open at 9.")
    got = await say(client, app, echo, "pricing")
    assert "We open at 9." not in got  # the bot is handling it
    got = await say(client, app, echo, "human")
    assert got == ["We open at 9."]  # outside hours: nobody takes it, one answer
    assert await state(app) == ("waiting", None)
    async with app[DB].write() as conn:
        await conn.execute(conversations.update().values(handler="bot"))
    got = await say(client, app, echo, "human")
    assert "We open at 9." not in got  # already told within the window


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        ("2026-11-30T09:00:00+00:00", True),  # Monday 09:00 in Lisbon (UTC in winter)
        ("2026-11-30T08:59:00+00:00", False),
        ("2026-11-30T18:00:00+00:00", False),
        ("2026-11-29T12:00:00+00:00", False),  # Sunday
        ("2026-12-25T12:00:00+00:00", False),  # a holiday
    ],
)
def test_business_hours(when: str, open_: bool) -> None:
    from datetime import datetime

    hours = {
        "days": {d: ["09:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2026-12-25"],
    }
    assert in_business_hours(hours, "Europe/Lisbon", datetime.fromisoformat(when)) is open_


async def _drained(app: Application) -> bool:
    return await count(app, work_items) == 0


async def _sent(app: Application) -> bool:
    return await count(app, outbox) == 0
