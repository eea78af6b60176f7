"""The Slack agent desk: threads for handed-over conversations, replies back to contacts.

Entry point `chancenter.extensions:slack`. Configured for the default space by
`CHANCENTER_SLACK_BOT_TOKEN`, `CHANCENTER_SLACK_SIGNING_SECRET` and
`CHANCENTER_SLACK_INBOX_CHANNEL`; without them `/slack/events` says what to set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.http import error_response
from bot.keys import DB, DESK_WAKE, SENDER, SETTINGS

log = logging.getLogger(__name__)

BOLT = web.AppKey("slack_bolt", object)


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    if not (
        settings.slack_bot_token and settings.slack_signing_secret and settings.slack_inbox_channel
    ):
        app.router.add_post("/slack/events", _not_configured)
        return
    app[DESK_WAKE] = asyncio.Event()
    app.cleanup_ctx.append(_desk)
    app.router.add_post("/slack/events", _events)


async def _desk(app: web.Application) -> AsyncIterator[None]:
    from slack_sdk.web.async_client import AsyncWebClient

    from integrations.slack.agent_actions import AgentActions
    from integrations.slack.desk import SlackDesk
    from integrations.slack.events import build_bolt
    from integrations.slack.relay import desk_relay

    settings = app[SETTINGS]
    assert settings.slack_bot_token and settings.slack_signing_secret
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=str(settings.slack_api_base)
    )
    app[BOLT] = build_bolt(
        AgentActions(app, client), client, settings.slack_signing_secret.get_secret_value()
    )
    desk = SlackDesk(
        client,
        app[DB],
        str(settings.slack_inbox_channel),
        str(settings.public_url),
        settings.signing_key(),
    )
    task = None
    if settings.works:
        relay = desk_relay(app[DB], desk, app[DESK_WAKE], app[SENDER].owned)
        task = asyncio.create_task(relay.run())
    log.info("Slack agent desk ready", extra={"inbox": settings.slack_inbox_channel})
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _events(request: web.Request) -> web.Response:
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

    bolt = request.app[BOLT]
    response = await bolt.async_dispatch(await to_bolt_request(request))  # type: ignore[attr-defined]
    return await to_aiohttp_response(response)


async def _not_configured(request: web.Request) -> web.Response:
    return error_response(
        404,
        "no Slack desk here: set CHANCENTER_SLACK_BOT_TOKEN, CHANCENTER_SLACK_SIGNING_SECRET "
        "and CHANCENTER_SLACK_INBOX_CHANNEL, then restart",
    )
