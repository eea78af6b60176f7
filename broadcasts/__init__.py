"""Broadcasts: one message to a segment of contacts through one channel, paced, resumable.

Entry points: `chancenter.extensions:broadcasts` adds the `/api/v1/broadcasts` routes
and the runner that plans and sends running broadcasts (it runs where the app works its
queue); `chancenter.handlers:03-opt-out` hears a contact's STOP and START.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import CHANNELS, DB, SENDER, SETTINGS
from bot.logs import running


def setup(app: web.Application) -> None:
    from broadcasts import api

    api.routes.setup(app)
    app.cleanup_ctx.append(_runner)


async def _runner(app: web.Application) -> AsyncIterator[None]:
    from broadcasts.runner import RUNNER, BroadcastRunner

    sender = app[SENDER]
    # the sender's partitions: in scale-out each worker sends for the ones it owns
    runner = BroadcastRunner(app[DB], app[CHANNELS], lambda: sender.owned())
    app[RUNNER] = runner
    async with running(*((runner.run,) if app[SETTINGS].works else ())):
        yield
