"""The conversational flow engine: surveys and away replies.

Entry point `chancenter.extensions:surveys`: `setup(app)` adds the `/api/v1/surveys`
routes, the satisfaction survey asked after a close (an `ON_CLOSE` hook), and, for the
app's lifetime, the relay that posts flows' webhooks and the clock that reminds and
expires unanswered flows (run only where the app works its queue).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import DB, HTTP, ON_CLOSE, SENDER, SETTINGS, WEBHOOKS
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
    from surveys.webhooks import webhook_relay

    # the sender's partitions: with Redis, this process posts its own conversations' only
    app[WEBHOOKS] = relay = webhook_relay(app[DB], app[HTTP], app[SENDER].owned)
    runs = (relay.run, FlowClock(app[DB], app[SENDER].notify).run) if app[SETTINGS].works else ()
    async with running(*runs):
        yield
