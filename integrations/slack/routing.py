"""`POST /slack/events` for every space's Slack workspace: the request names its team
(`team_id`) and app (`api_app_id`); the desk of that team whose signing secret signed it
gets it, and nothing else does.

A request signed by none of the candidates is 401 (even when another space's secret
would verify it); one signed with a secret we know from a team no space has connected
is 200 and ignored, logged once per team.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.errors import error_response
from integrations.slack.desks import Desk, Desks
from integrations.slack.inbound import Ignored, Refused, check, parse, verify

log = logging.getLogger(__name__)

STRANGERS = 10_000  # unknown teams remembered (to log each once)

NOT_CONFIGURED = (
    "no Slack desk here: connect a space's Slack workspace (`chancenter integrations slack`, "
    "or the OAuth install with CHANCENTER_SLACK_CLIENT_ID), or set "
    "CHANCENTER_SLACK_BOT_TOKEN, CHANCENTER_SLACK_SIGNING_SECRET and "
    "CHANCENTER_SLACK_INBOX_CHANNEL and restart"
)


class Router:
    def __init__(self, desks: Desks) -> None:
        self.desks = desks
        self._strangers: set[str] = set()  # teams already logged as unknown

    async def events(self, request: web.Request) -> web.Response:
        """Checked here (see `inbound`), then the space's slack-bolt app routes it."""
        if not self.desks.secrets():
            return error_response(404, NOT_CONFIGURED)
        raw = await request.read()  # bounded: over max_body_bytes, the middleware says 413
        await self.desks.learn_teams()
        try:
            parsed: tuple[str, dict[str, Any]] | Refused = parse(raw, request.content_type)
        except Refused as exc:
            parsed = exc  # said once the signature is known good: a stranger learns nothing
        team_id, app_id = _addressed(parsed[1] if isinstance(parsed, tuple) else {})
        try:
            desk = self._signed_by(request, raw, team_id, app_id)
            if isinstance(parsed, Refused):
                raise parsed
            text, body = parsed
            if desk is None:
                raise Ignored(self._stranger(team_id))
            check(body)
        except Refused as exc:
            log.warning("Slack request refused", extra={"status": exc.status, "reason": exc.reason})
            return error_response(exc.status, exc.reason)
        except Ignored as exc:
            if str(exc):
                log.info("Slack request ignored", extra={"reason": str(exc)})
            return web.Response(status=200)
        bolt_request = AsyncBoltRequest(
            body=text,
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]
        )
        # slack-bolt reads a form that merely mentions "payload" (`/chancenter s 4 payload`) as {}
        bolt_request.body = body
        bolt_request.context = build_async_context(AsyncBoltContext({}), body)
        response = await desk.bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(response)

    def _signed_by(
        self, request: web.Request, raw: bytes, team_id: str | None, app_id: str | None
    ) -> Desk | None:
        """The desk whose secret signed `raw`; None when a secret of no candidate did."""
        at, refused = time.time(), None
        for desk in self.desks.candidates(team_id, app_id):
            try:
                verify(desk.signing_secret, request.headers, raw, at)
                return desk
            except Refused as exc:
                refused = exc
        for secret in self.desks.secrets():
            try:
                verify(secret, request.headers, raw, at)
                return None  # Slack's, but for a team none of our spaces connected
            except Refused as exc:
                refused = exc
        assert refused is not None
        raise refused

    def _stranger(self, team_id: str | None) -> str:
        """The reason to log, once per team: later requests of that team are silent."""
        team = team_id or "?"
        if team in self._strangers:
            return ""
        if len(self._strangers) >= STRANGERS:
            self._strangers.clear()  # a flood of made-up teams costs memory, not more logs
        self._strangers.add(team)
        return f"a Slack workspace no space has connected (team {team[:20]})"


def _addressed(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The team and app a request comes from: events and commands name them at the top,
    interactions inside `team` and `api_app_id`."""
    team = body.get("team_id")
    if team is None and isinstance(body.get("team"), dict):
        team = body["team"].get("id")
    app = body.get("api_app_id")
    return (
        team if isinstance(team, str) else None,
        app if isinstance(app, str) else None,
    )
