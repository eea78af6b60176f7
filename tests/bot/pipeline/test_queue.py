"""The in-process work queue: started by announcements, and by a scan for what a crash left."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

import bot.pipeline.queue
from bot.app import create_app
from bot.keys import QUEUE
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.tables import work_items
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import add_channel, closed_within, count, eventually


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
