"""The in-process work queue: started by announcements, and by a scan for what a crash left."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

import bot.pipeline.queue
from bot.app import create_app
from bot.keys import DB, QUEUE
from bot.pipeline.lines import Line
from bot.pipeline.worker import WorkItem
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.tables import work_items
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import (
    add_channel,
    calls_to,
    closed_within,
    count,
    eventually,
    held_handling,
)


async def test_a_scan_finding_more_than_it_takes_looks_again(
    aiohttp_client: Any, settings: Settings, plugins: Plugins, monkeypatch: pytest.MonkeyPatch
) -> None:
    # messages stored by a process that does no work (as `serve --no-work`), then a queue
    # starts with them all pending: more conversations than one scan takes
    client: TestClient = await aiohttp_client(
        create_app(settings.model_copy(update={"work": False}), plugins)
    )
    app = client.server.app
    channel = await add_channel(app, "echo")
    for n in range(5):
        await post(client, channel, body({"id": str(n), "from": f"u{n}", "text": "hi"}))
    assert await count(app, work_items) == 5
    monkeypatch.setattr(bot.pipeline.queue, "SCAN", 2)
    running = asyncio.create_task(app[QUEUE].run())
    try:

        async def all_handled() -> bool:
            return await count(app, work_items) == 0

        await eventually(all_handled)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await closed_within(client, 15)


async def test_messages_committed_while_a_conversation_drains_join_it_unread(
    client: TestClient, plugins: Plugins
) -> None:
    """The ingest hands the drain what it committed: handled in order, nothing read back."""
    app = client.server.app
    channel = await add_channel(app, "echo")
    await post(client, channel, body({"id": "0", "from": "u", "text": "hi"}))  # opens it
    await eventually(lambda: _none_pending(app))
    reads = calls_to(app[QUEUE], "_pending")
    handled, release = held_handling(app)
    for n in (1, 2, 3):
        await post(client, channel, body({"id": str(n), "from": "u", "text": "pricing"}))
    await eventually(lambda: handled == ["1"])
    release.set()
    await eventually(lambda: handled == ["1", "2", "3"])
    await eventually(lambda: _none_pending(app))
    assert len(reads) == 0


async def _none_pending(app: Any) -> bool:
    return await count(app, work_items) == 0


async def test_a_drain_works_the_line_it_is_given_even_one_that_starts_empty(
    aiohttp_client: Any, settings: Settings, plugins: Plugins
) -> None:
    """Its owner registered that line: what is handed over to it must be handled."""
    client: TestClient = await aiohttp_client(
        create_app(settings.model_copy(update={"work": False}), plugins)
    )
    app = client.server.app
    channel = await add_channel(app, "echo")
    handled, release = held_handling(app, consume=True)
    await post(client, channel, body({"id": "1", "from": "u", "text": "hi"}))
    queue = app[QUEUE]
    line: Line[WorkItem] = Line()
    try:
        async with app[DB].read() as conn:
            conversation_id = (await conn.execute(sa.select(work_items.c.conversation_id))).scalar()
        draining = asyncio.create_task(queue.drain(conversation_id, line))
        await eventually(lambda: handled == ["1"])
        await post(client, channel, body({"id": "2", "from": "u", "text": "pricing"}))
        async with app[DB].read() as conn:
            row = (
                await conn.execute(sa.select(work_items).order_by(work_items.c.id.desc()))
            ).first()
        line.take([WorkItem(row.id, conversation_id, row.payload, row.created_at)])
        release.set()
        await asyncio.wait_for(draining, 5)
        assert handled == ["1", "2"]
        assert await count(app, work_items) == 0
    finally:
        release.set()
        await closed_within(client, 15)
