"""The conversational flow engine: surveys and away replies.

Entry point `chancenter.extensions:surveys`: `setup(app)` adds the `/api/v1/surveys`
routes, the satisfaction survey asked after a close (an `ON_CLOSE` hook), and, for the
app's lifetime, the clock that reminds and expires unanswered flows (run only where the
app works its queue). A flow's `webhook:` end action goes through the hub's webhook relay.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import DB, ON_CLOSE, SENDER, SETTINGS
from bot.logs import running

log = logging.getLogger(__name__)


def setup(app: web.Application) -> None:
    from surveys import api
    from surveys.start import after_close

    api.routes.setup(app)
    app[ON_CLOSE].append(after_close)
    app.cleanup_ctx.append(_flows)


async def _flows(app: web.Application) -> AsyncIterator[None]:
    from surveys.clock import FlowClock

    runs = (FlowClock(app[DB], app[SENDER].notify).run,) if app[SETTINGS].works else ()
    async with running(*runs):
        yield
