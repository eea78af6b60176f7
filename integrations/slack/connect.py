"""Connecting a space's Slack workspace, one way for a pasted bot token and for the
OAuth install: checked with Slack, one workspace's app for one space, stored sealed.

`InstallationStore` is slack-bolt's installation store over the same `integrations`
rows, so the OAuth flow (and anything else of slack-bolt's) saves, finds and deletes
installations where the desks read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import now
from bot.errors import ConfigError, Conflict, Unprocessable
from bot.keys import DB, SETTINGS
from bot.storage.tables import integrations
from bot.workspace.crypto import Vault
from integrations.slack.desks import Desks

SPACE = "space_id"  # the custom value an installation carries to the store


@dataclass(frozen=True)
class Connection:
    bot_token: str
    signing_secret: str | None  # None: the OAuth app's, from the environment
    inbox_channel: str | None
    team_id: str | None = None  # None: asked from Slack (`auth.test`)
    team_name: str | None = None
    app_id: str | None = None
    bot_user_id: str | None = None
    source: str = "token"  # token | oauth


async def check(client: AsyncWebClient, given: Connection) -> Connection:
    """What Slack says of the token and the inbox channel; `Unprocessable` (422) with
    Slack's reason when it refuses either."""
    try:
        who = await client.auth_test()
        bot = await client.bots_info(bot=who["bot_id"]) if who.get("bot_id") else None
        if given.inbox_channel:
            await client.conversations_info(channel=given.inbox_channel)
    except SlackApiError as exc:
        raise Unprocessable(f"Slack refused it: {exc.response.get('error')}") from None
    except (SlackClientError, OSError, TimeoutError) as exc:
        raise Unprocessable(f"Slack could not be reached: {exc}") from None
    app_id = (bot or {}).get("bot", {}).get("app_id") if bot else None
    return Connection(
        bot_token=given.bot_token,
        signing_secret=given.signing_secret,
        inbox_channel=given.inbox_channel,
        team_id=who["team_id"],
        team_name=who.get("team"),
        app_id=app_id or given.app_id,
        bot_user_id=who.get("user_id"),
        source=given.source,
    )


async def connect(desks: Desks, space_id: int, connection: Connection) -> dict[str, Any]:
    """Store the space's desk (replacing its earlier one); its parked notices go."""
    app = desks.app
    db = app[DB]
    config = {
        k: v
        for k, v in asdict(connection).items()
        if k not in ("bot_token", "signing_secret") and v is not None
    }
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(integrations.c.space_id, integrations.c.settings).where(
                    integrations.c.kind == "slack", integrations.c.space_id != space_id
                )
            )
        ).all()
    for row in rows:
        if (row.settings.get("team_id"), row.settings.get("app_id")) == (
            connection.team_id,
            connection.app_id,
        ) and desks.of(row.space_id) is not None:
            raise Conflict(
                f"this Slack workspace's app already serves space {row.space_id}: remove it "
                "there first (`chancenter integrations remove-slack`), or use another app"
            )
    secrets = {"bot_token": connection.bot_token}
    if connection.signing_secret:
        secrets["signing_secret"] = connection.signing_secret
    values = {
        "settings": config,
        "credentials": Vault(app[SETTINGS].signing_key()).seal(secrets),
        "error": None,
        "updated_at": now(),
    }
    async with db.write() as conn:
        await conn.execute(
            db.insert(integrations)
            .values(space_id=space_id, kind="slack", **values)
            .on_conflict_do_update(index_elements=["space_id", "kind"], set_=values)
        )
    await desks.installed(space_id)
    return config


class InstallationStore(AsyncInstallationStore):
    """slack-bolt's installations, one a space, in the `integrations` table."""

    def __init__(self, desks: Desks) -> None:
        self.desks = desks

    async def async_save(self, installation: Installation) -> None:
        space_id = installation.custom_values.get(SPACE)
        if space_id is None:
            raise ConfigError("an installation must name its space")
        await connect(
            self.desks,
            int(space_id),
            Connection(
                bot_token=installation.bot_token or "",
                signing_secret=None,
                inbox_channel=installation.incoming_webhook_channel_id,
                team_id=installation.team_id,
                team_name=installation.team_name,
                app_id=installation.app_id,
                bot_user_id=installation.bot_user_id,
                source="oauth",
            ),
        )

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        desk = next((d for d in self.desks.all() if d.team_id == team_id), None)
        if desk is None:
            return None
        return Bot(
            app_id=desk.app_id,
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=desk.client.token or "",
            bot_id="",
            bot_user_id="",
        )

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        for desk in self.desks.all():
            if desk.team_id == team_id:
                await self.desks.uninstall(desk.space_id, "the installation was deleted")

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)
