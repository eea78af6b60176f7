"""The Slack agent desk: threads for handed-over conversations, replies back to contacts.

Entry point `chancenter.extensions:slack`. Configured for the default space by
`CHANCENTER_SLACK_BOT_TOKEN`, `CHANCENTER_SLACK_SIGNING_SECRET` and
`CHANCENTER_SLACK_INBOX_CHANNEL`; without them `/slack/events` says what to set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from bot.errors import error_response
from bot.keys import DB, DEFAULT_SPACE, DESK_WAKE, SENDER, SETTINGS

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
        app[DEFAULT_SPACE],  # the environment's desk serves the default space only
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
    """Checked here (see `inbound`), then slack-bolt routes it; bad input gets one log line."""
    from slack_bolt.adapter.aiohttp import to_aiohttp_response
    from slack_bolt.context.async_context import AsyncBoltContext
    from slack_bolt.request.async_internals import build_async_context
    from slack_bolt.request.async_request import AsyncBoltRequest

    from integrations.slack.inbound import Ignored, Refused, check, parse, verify

    secret = request.app[SETTINGS].slack_signing_secret
    assert secret is not None
    raw = await request.read()  # bounded: over max_body_bytes, the app's middleware says 413
    try:
        verify(secret.get_secret_value(), request.headers, raw, time.time())
        text, body = parse(raw, request.content_type)
        check(body)
    except Refused as exc:
        log.warning("Slack request refused", extra={"status": exc.status, "reason": exc.reason})
        return error_response(exc.status, exc.reason)
    except Ignored as exc:
        log.info("Slack request ignored", extra={"reason": str(exc)})
        return web.Response(status=200)
    bolt_request = AsyncBoltRequest(body=text, query=request.query_string, headers=request.headers)  # type: ignore[arg-type]
    # slack-bolt reads a form that merely mentions "payload" (`/chancenter s 4 payload`) as {}
    bolt_request.body = body
    bolt_request.context = build_async_context(AsyncBoltContext({}), body)
    response = await request.app[BOLT].async_dispatch(bolt_request)  # type: ignore[attr-defined]
    return await to_aiohttp_response(response)


async def _not_configured(request: web.Request) -> web.Response:
    return error_response(
        404,
        "no Slack desk here: set CHANCENTER_SLACK_BOT_TOKEN, CHANCENTER_SLACK_SIGNING_SECRET "
        "and CHANCENTER_SLACK_INBOX_CHANNEL, then restart",
    )
