"""Every space's Slack desk: which Slack workspace (team) and app serve which space.

A space connects its own workspace with a bot token (`integrations slack`) or with the
OAuth install; both are an `integrations` row of kind `slack` (the token sealed). The
environment's token serves the default space unless that space has its own row. An
uninstalled desk keeps its row without credentials: the space's notices then wait in
`desk_outbox` (parked) until it is installed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import now
from bot.keys import DB, DEFAULT_SPACE, SETTINGS
from bot.storage.tables import conversations, desk_outbox, integrations
from bot.workspace.crypto import Vault
from integrations.slack.desk import SlackDesk

log = logging.getLogger(__name__)

REFRESH = 5.0  # seconds: another process's install or uninstall is seen this soon
TEAM_TIMEOUT = 2.0  # seconds for `auth.test`, within Slack's three for an answer
PARKED = timedelta(days=30)  # a parked notice waits this long unless an install wakes it


@dataclass
class Desk:
    """One space's Slack workspace, as the hub talks to it."""

    space_id: int
    team_id: str | None  # None: the environment's desk, until `auth.test` names its team
    app_id: str | None
    signing_secret: str
    inbox: str
    client: AsyncWebClient
    view: SlackDesk
    bolt: AsyncApp
    stamp: datetime | None  # the row's updated_at; None for the environment's desk

    def answers(self, team_id: str | None, app_id: str | None) -> bool:
        """Whether a request from `team_id`'s `app_id` may be this desk's."""
        if team_id is None or self.team_id is None:
            return True  # no team to match (url_verification), or ours is not known yet
        return team_id == self.team_id and (app_id is None or self.app_id in (None, app_id))


Build = Callable[["Desks", int, AsyncWebClient, str], AsyncApp]


class Desks:
    """The live desks by space, refreshed from the database; the hub's `AgentDesk`."""

    def __init__(self, app: web.Application, build_bolt: Build) -> None:
        self.app = app
        self.wake = asyncio.Event()
        self._build_bolt = build_bolt
        self._live: dict[int, Desk] = {}
        self._parked: set[int] = set()  # spaces whose desk was uninstalled

    def serves(self, space_id: int) -> bool:
        return space_id in self._live or space_id in self._parked

    def notify(self) -> None:
        self.wake.set()

    def of(self, space_id: int) -> Desk | None:
        return self._live.get(space_id)

    def parked(self, space_id: int) -> bool:
        return space_id in self._parked

    def all(self) -> list[Desk]:
        return list(self._live.values())

    def candidates(self, team_id: str | None, app_id: str | None) -> list[Desk]:
        return [d for d in self._live.values() if d.answers(team_id, app_id)]

    def secrets(self) -> set[str]:
        """Every signing secret a request may be signed with (to tell a stranger apart)."""
        known = {d.signing_secret for d in self._live.values()}
        if secret := self.app[SETTINGS].slack_signing_secret:
            known.add(secret.get_secret_value())
        return known

    async def refresh(self) -> None:
        """Build the desks whose row changed; drop those gone or uninstalled."""
        settings, db = self.app[SETTINGS], self.app[DB]
        async with db.read() as conn:
            rows = (
                await conn.execute(sa.select(integrations).where(integrations.c.kind == "slack"))
            ).all()
        vault = Vault(settings.signing_key())
        live: dict[int, Desk] = {}
        parked: set[int] = set()
        for row in rows:
            credentials = vault.open(row.credentials)
            secret = credentials.get("signing_secret") or _app_secret(settings)
            if not (credentials.get("bot_token") and secret):
                parked.add(row.space_id)  # uninstalled, or an OAuth app without its secret
                continue
            known = self._live.get(row.space_id)
            if known is not None and known.stamp == row.updated_at:
                live[row.space_id] = known
                continue
            live[row.space_id] = self._desk(
                row.space_id,
                credentials["bot_token"],
                secret,
                row.settings,
                row.updated_at,
            )
        default = self.app[DEFAULT_SPACE]
        if default not in live and default not in parked and _environment(settings):
            live[default] = self._live.get(default) or self._environment_desk()
        self._live, self._parked = live, parked

    def _desk(
        self,
        space_id: int,
        token: str,
        secret: str,
        config: dict[str, Any],
        stamp: datetime | None,
    ) -> Desk:
        settings = self.app[SETTINGS]
        client = AsyncWebClient(token=token, base_url=str(settings.slack_api_base))
        inbox = str(config.get("inbox_channel") or "")
        view = SlackDesk(
            client, self.app[DB], space_id, inbox, str(settings.public_url), settings.signing_key()
        )
        return Desk(
            space_id,
            config.get("team_id"),
            config.get("app_id"),
            secret,
            inbox,
            client,
            view,
            self._build_bolt(self, space_id, client, secret),
            stamp,
        )

    def _environment_desk(self) -> Desk:
        settings = self.app[SETTINGS]
        assert settings.slack_bot_token and settings.slack_signing_secret
        return self._desk(
            self.app[DEFAULT_SPACE],
            settings.slack_bot_token.get_secret_value(),
            settings.slack_signing_secret.get_secret_value(),
            {"inbox_channel": settings.slack_inbox_channel},
            None,
        )

    async def run(self) -> None:
        """Keep up with installs and uninstalls in other processes."""
        while True:
            await asyncio.sleep(REFRESH)
            await self.refresh()

    async def learn_teams(self) -> None:
        """Ask Slack which team the environment's token is of, so that only that team's
        requests reach the default space (until then it takes any its secret signed)."""
        for desk in self._live.values():
            if desk.team_id is None:
                try:
                    answer = await asyncio.wait_for(desk.client.auth_test(), TEAM_TIMEOUT)
                    desk.team_id = answer["team_id"]
                except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
                    log.warning("Slack auth.test failed; trying again", extra={"error": str(exc)})

    async def installed(self, space_id: int) -> None:
        """A space's desk was (re)connected: its parked notices go now."""
        await self.refresh()
        async with self.app[DB].write() as conn:
            await conn.execute(
                desk_outbox.update()
                .where(
                    desk_outbox.c.conversation_id.in_(
                        sa.select(conversations.c.id).where(conversations.c.space_id == space_id)
                    )
                )
                .values(next_attempt_at=now(), attempts=0)
            )
        self.notify()

    async def uninstall(self, space_id: int, why: str) -> None:
        """Slack took the token back: keep the row (so notices wait), drop the token."""
        values = {"credentials": None, "error": why, "updated_at": now()}
        db = self.app[DB]
        async with db.write() as conn:
            await conn.execute(
                db.insert(integrations)
                .values(space_id=space_id, kind="slack", settings={}, **values)
                .on_conflict_do_update(index_elements=["space_id", "kind"], set_=values)
            )
        log.warning("Slack desk uninstalled", extra={"space": space_id, "reason": why})
        await self.refresh()


def _environment(settings: Any) -> bool:
    return bool(
        settings.slack_bot_token and settings.slack_signing_secret and settings.slack_inbox_channel
    )


def _app_secret(settings: Any) -> str:
    secret = settings.slack_signing_secret
    return secret.get_secret_value() if secret else ""


DESKS = web.AppKey("slack_desks", Desks)
