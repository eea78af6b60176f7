"""`/api/v1/integrations/slack`: a space connects its own Slack workspace, with a bot
token or through the OAuth install, and disconnects it. Managers only."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field, SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from bot.api.auth import PRINCIPAL
from bot.api.integrations import remove
from bot.api.openapi import ERRORS, Routes
from bot.api.params import json_body
from bot.api.roles import require
from bot.errors import Conflict
from bot.keys import SETTINGS
from integrations.slack.connect import Connection, check, connect
from integrations.slack.desks import DESKS
from integrations.slack.install import LINK_TTL, install_link

routes = Routes()


class SlackIntegration(BaseModel):
    bot_token: SecretStr = Field(description='the app\'s "Bot User OAuth Token" (xoxb-...)')
    signing_secret: SecretStr = Field(
        description='the app\'s "Signing Secret" (Basic Information); kept encrypted'
    )
    inbox_channel: str = Field(
        pattern=r"^[CG][A-Z0-9]{2,20}$",
        description="the channel id where handed-over conversations open threads",
    )


@routes.post(
    "/api/v1/integrations/slack",
    "Connect the space's own Slack workspace (its agent desk)",
    body=SlackIntegration,
    status=201,
    errors=(*ERRORS, 409, 422),
)
async def set_slack(request: web.Request) -> web.Response:
    """Checked with Slack (`auth.test`, the inbox channel) before anything is stored."""
    require(request, "manager")
    body = await json_body(request, SlackIntegration)
    given = Connection(
        bot_token=body.bot_token.get_secret_value(),
        signing_secret=body.signing_secret.get_secret_value(),
        inbox_channel=body.inbox_channel,
    )
    client = AsyncWebClient(
        token=given.bot_token, base_url=str(request.app[SETTINGS].slack_api_base)
    )
    checked = await check(client, given)
    config = await connect(request.app[DESKS], request[PRINCIPAL].space_id, checked)
    return web.json_response({"kind": "slack", "settings": config}, status=201)


@routes.delete("/api/v1/integrations/slack", "Disconnect the space's Slack workspace")
async def remove_slack(request: web.Request) -> web.Response:
    """Its notices are dropped from then on; its threads stay in Slack."""
    require(request, "manager")
    await remove(request, "slack", "this space has no Slack workspace of its own")
    await request.app[DESKS].refresh()
    return web.Response(status=204)


@routes.post(
    "/api/v1/integrations/slack/install-link",
    "A short-lived link that installs the Slack desk for this space (OAuth)",
    errors=(*ERRORS, 409),
)
async def slack_install_link(request: web.Request) -> web.Response:
    require(request, "manager")
    settings = request.app[SETTINGS]
    if not (settings.slack_client_id and settings.slack_client_secret):
        raise Conflict(
            "set CHANCENTER_SLACK_CLIENT_ID and CHANCENTER_SLACK_CLIENT_SECRET (the Slack app's "
            "Basic Information) to install with OAuth, or connect with a bot token: "
            "`chancenter integrations slack --bot-token ...`"
        )
    url = install_link(settings, request[PRINCIPAL].space_id)
    return web.json_response({"url": url, "expires_in": LINK_TTL})
