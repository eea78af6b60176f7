"""The Slack agent desk: threads for handed-over conversations, replies back to contacts.

Entry point `chancenter.extensions:slack`. Each space may connect its own Slack
workspace (`integrations slack`, or the OAuth install when `CHANCENTER_SLACK_CLIENT_ID`
is set); `CHANCENTER_SLACK_BOT_TOKEN`, `CHANCENTER_SLACK_SIGNING_SECRET` and
`CHANCENTER_SLACK_INBOX_CHANNEL` configure the default space's. One `/slack/events`
serves them all (see `routing`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.keys import DB, DESK, SENDER, SETTINGS
from bot.logs import running

log = logging.getLogger(__name__)


def setup(app: web.Application) -> None:
    from integrations.slack import api, install
    from integrations.slack.desks import DESKS, Desks
    from integrations.slack.events import build_bolt
    from integrations.slack.routing import Router

    desks = Desks(app, build_bolt)
    app[DESKS] = desks
    app[DESK] = desks  # the worker and the API queue notices for the spaces it serves
    app[install.FLOW] = install.oauth_flow(app, desks)
    app.cleanup_ctx.append(_desks)
    app.router.add_post("/slack/events", Router(desks).events)
    app.router.add_get("/slack/install", install.install)
    app.router.add_get("/slack/oauth_redirect", install.oauth_redirect)
    api.routes.setup(app)


async def _desks(app: web.Application) -> AsyncIterator[None]:
    from integrations.slack.desks import DESKS
    from integrations.slack.relay import desk_relay

    desks = app[DESKS]
    await desks.refresh()
    runs = [desks.run]
    if app[SETTINGS].works:
        runs.append(desk_relay(app[DB], desks, app[SENDER].owned).run)
    spaces = sorted(d.space_id for d in desks.all())
    log.info("Slack agent desks ready", extra={"spaces": spaces})
    async with running(*runs):
        yield
