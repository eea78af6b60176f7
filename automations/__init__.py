"""Automations: a trigger, conditions and actions, run by the worker.

Entry points: `chancenter.handlers:05-automations` runs them for each work item (before
the routing), and `chancenter.extensions:automations` adds the `/api/v1/automations`
routes, the compiled automations of each space (`app[LIBRARY]`) and, where the app
works its queue, the clock that turns due timers into work items.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import DB, QUEUE, SETTINGS
from bot.logs import running


def setup(app: web.Application) -> None:
    from automations import api

    api.routes.setup(app)
    app.cleanup_ctx.append(_engine)


async def _engine(app: web.Application) -> AsyncIterator[None]:
    from automations.clock import AutomationClock
    from automations.engine import LIBRARY, Library

    app[LIBRARY] = Library(app[DB])
    clock = AutomationClock(app[DB], app[QUEUE].announce)
    async with running(*((clock.run,) if app[SETTINGS].works else ())):
        yield
