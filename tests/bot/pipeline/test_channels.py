"""The channel registry: one instance per channel, whoever asks."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.keys import CHANNELS
from tests.conftest import add_channel


async def test_senders_asking_at_once_share_one_channel(app: web.Application) -> None:
    # a second instance would bring a second rate budget: twice the platform's limit
    channel_id = await add_channel(app, "echo")
    got = await asyncio.gather(*(app[CHANNELS].get(channel_id) for _ in range(50)))
    assert len({id(channel) for channel in got}) == 1
    assert await app[CHANNELS].get(channel_id) is got[0]


async def test_closing_closes_every_channel_built(app: web.Application) -> None:
    # a platform SDK's pooled connections (the Bot Framework's) go with the hub
    built = [await app[CHANNELS].get(await add_channel(app, kind)) for kind in ("echo", "webchat")]
    closed = []
    for channel in built:
        channel.close = lambda channel=channel: _note(closed, channel)  # type: ignore[method-assign]
    await app[CHANNELS].close()
    assert closed == built
    assert await app[CHANNELS].get(built[0].id) is not built[0]  # built again if asked


async def _note(closed: list[object], channel: object) -> None:
    closed.append(channel)
