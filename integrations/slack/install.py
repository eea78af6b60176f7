"""The Slack OAuth install of a space's desk: slack-bolt's flow, with its state and its
installations kept in our database.

A manager gets a short-lived signed link (`integrations slack-install-link`); opening it
(`GET /slack/install`) issues a state bound to that space and goes on to Slack; Slack
sends the browser back to `GET /slack/oauth_redirect`, where the flow consumes the
state, exchanges the code (`oauth.v2.access`) and stores the installation for the
state's space. The installer picks the inbox channel on Slack's page
(`incoming-webhook`).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.error import BoltError
from slack_bolt.oauth.async_callback_options import (
    AsyncCallbackOptions,
    AsyncFailureArgs,
    AsyncSuccessArgs,
)
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import now
from bot.errors import ChanCenterError, error_response
from bot.keys import DB, SETTINGS
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.tables import slack_oauth_states
from integrations.slack.connect import SPACE, InstallationStore
from integrations.slack.desks import Desks

LINK_TTL = 15 * 60  # seconds a printed install link works
STATE_TTL = 10 * 60  # seconds from "Add to Slack" to Slack's redirect
SCOPES = (
    "chat:write",
    "chat:write.customize",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "users:read",
    "users:read.email",
    "commands",
    "incoming-webhook",
)
NOT_CONFIGURED = (
    "Slack's OAuth install is not set up on this hub: set CHANCENTER_SLACK_CLIENT_ID, "
    "CHANCENTER_SLACK_CLIENT_SECRET and CHANCENTER_SLACK_SIGNING_SECRET (the Slack app's "
    '"Basic Information"), then restart'
)


def install_link(settings: Settings, space_id: int, at: float | None = None) -> str:
    """A link for one space that works for `LINK_TTL` seconds."""
    expires = int((at or time.time()) + LINK_TTL)
    query = {"space": space_id, "expires": expires, "sig": _sign(settings, space_id, expires)}
    return f"{str(settings.public_url).rstrip('/')}/slack/install?{urlencode(query)}"


def linked_space(settings: Settings, query: Any, at: float) -> int | None:
    """The space a signed, unexpired install link names; None for anything else."""
    space, expires, sig = query.get("space", ""), query.get("expires", ""), query.get("sig", "")
    if not (space.isdigit() and expires.isdigit() and len(space) < 19 and len(expires) < 13):
        return None
    expected = _sign(settings, int(space), int(expires))
    if not hmac.compare_digest(expected.encode(), sig.encode()) or int(expires) < at:
        return None
    return int(space)


def _sign(settings: Settings, space_id: int, expires: int) -> str:
    message = f"slack-install:{space_id}:{expires}".encode()
    return hmac.new(settings.signing_key(), message, hashlib.sha256).hexdigest()


class StateStore(AsyncOAuthStateStore):
    """A state is issued for one space and consumed once, before it expires."""

    def __init__(self, app: web.Application) -> None:
        self.app = app  # its database opens after setup

    @property
    def db(self) -> Database:
        return self.app[DB]

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        space_id = int(kwargs["space_id"])
        state = f"{space_id}-{secrets.token_urlsafe(24)}"
        async with self.db.write() as conn:
            await conn.execute(
                slack_oauth_states.delete().where(slack_oauth_states.c.expires_at < now())
            )
            await conn.execute(
                slack_oauth_states.insert().values(
                    state=state, space_id=space_id, expires_at=now() + timedelta(seconds=STATE_TTL)
                )
            )
        return state

    async def async_consume(self, state: str) -> bool:
        async with self.db.write() as conn:
            gone = await conn.execute(
                slack_oauth_states.delete().where(
                    slack_oauth_states.c.state == state, slack_oauth_states.c.expires_at >= now()
                )
            )
        return gone.rowcount == 1


class SpaceOAuthFlow(AsyncOAuthFlow):
    """slack-bolt's flow, with the space carried by the state from install to callback."""

    async def issue_new_state(self, request: AsyncBoltRequest) -> str:
        return await self.settings.state_store.async_issue(space_id=request.context["space_id"])

    async def store_installation(
        self, request: AsyncBoltRequest, installation: Installation
    ) -> None:
        # the state was issued by us and consumed just now: its prefix is the space
        installation.set_custom_value(SPACE, int(request.query["state"][0].split("-", 1)[0]))
        try:
            await self.settings.installation_store.async_save(installation)
        except ChanCenterError as exc:
            raise BoltError(str(exc)) from exc  # the failure page says why


def oauth_flow(app: web.Application, desks: Desks) -> SpaceOAuthFlow | None:
    settings = app[SETTINGS]
    if not (
        settings.slack_client_id and settings.slack_client_secret and settings.slack_signing_secret
    ):
        return None
    public = str(settings.public_url).rstrip("/")
    return SpaceOAuthFlow(
        client=AsyncWebClient(base_url=str(settings.slack_api_base)),
        settings=AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=list(SCOPES),
            user_scopes=[],
            redirect_uri=f"{public}/slack/oauth_redirect",
            install_page_rendering_enabled=False,  # the signed link is the manager's click
            installation_store=InstallationStore(desks),
            state_store=StateStore(app),
            state_expiration_seconds=STATE_TTL,
            callback_options=AsyncCallbackOptions(success=_success, failure=_failure),
        ),
    )


async def install(request: web.Request) -> web.Response:
    flow: SpaceOAuthFlow | None = request.app[FLOW]
    if flow is None:
        return error_response(404, NOT_CONFIGURED)
    space_id = linked_space(request.app[SETTINGS], request.query, time.time())
    if space_id is None:
        return error_response(
            403,
            "this install link is not valid or has expired: print a new one with "
            "`chancenter integrations slack-install-link`",
        )
    bolt_request = await to_bolt_request(request)
    bolt_request.context["space_id"] = space_id
    return await to_aiohttp_response(await flow.handle_installation(bolt_request))


async def oauth_redirect(request: web.Request) -> web.Response:
    flow: SpaceOAuthFlow | None = request.app[FLOW]
    if flow is None:
        return error_response(404, NOT_CONFIGURED)
    return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))


async def _success(args: AsyncSuccessArgs) -> BoltResponse:
    team = html.escape(args.installation.team_name or args.installation.team_id or "Slack")
    body = (
        f"<p>ChanCenter's agent desk is installed in <b>{team}</b>. Handed-over conversations "
        "now open threads in the channel you picked.</p>"
    )
    return _page(200, "Slack connected", body)


async def _failure(args: AsyncFailureArgs) -> BoltResponse:
    reason = html.escape(str(args.error) if args.error else args.reason)
    body = (
        f"<p>The install did not complete: {reason}.</p><p>Print a new link with "
        "<code>chancenter integrations slack-install-link</code> and try again.</p>"
    )
    return _page(args.suggested_status_code, "Slack not connected", body)


def _page(status: int, title: str, body: str) -> BoltResponse:
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><main><h1>{title}</h1>{body}</main></body></html>"
    )
    return BoltResponse(
        status=status, body=page, headers={"Content-Type": "text/html; charset=utf-8"}
    )


FLOW = web.AppKey("slack_oauth_flow", SpaceOAuthFlow | None)
