"""Each space's bot: its own Dialogflow agent when it has one, else a bot of the hub's.

The environment's Dialogflow agent (`CHANCENTER_DIALOGFLOW_PROJECT`) belongs to the
default space: another organization's contacts must never reach that project, so every
other space without an agent of its own gets the built-in, offline bot.

Built once per space and kept; a change through the API forgets it at once in this
process, and other processes notice within `TTL` seconds.
"""

from __future__ import annotations

import time
from importlib.metadata import entry_points
from typing import Any

import sqlalchemy as sa

from bot.errors import ConfigError
from bot.pipeline.bots import Bot
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.tables import integrations, spaces
from bot.workspace.crypto import Vault

TTL = 30.0


def bot_factory(name: str, why: str) -> Any:
    """A bot's factory through its entry point (`bot/` names no integration)."""
    found = entry_points(group="chancenter.bots", name=name)
    if not found:
        raise ConfigError(f"{why}, and the {name} bot is not installed")
    return next(iter(found)).load()


def builtin_bot(settings: Settings) -> Bot:
    why = "CHANCENTER_DIALOGFLOW_PROJECT serves the default space only, and other spaces need"
    bot: Bot = bot_factory("builtin", f"{why} the built-in bot")(settings)
    return bot


class SpaceBots:
    def __init__(
        self, default: Bot, db: Database, settings: Settings, others: Bot | None = None
    ) -> None:
        """`default` answers in the default space, `others` in every other space without its
        own agent; unset, `others` is `default` when that is the built-in bot, else the
        built-in bot."""
        self._default = default
        if others is None:
            others = builtin_bot(settings) if settings.dialogflow_project else default
        self._others = others
        self._db = db
        self._settings = settings
        self._vault = Vault(settings.signing_key())
        self._cache: dict[int, tuple[float, Any, Bot]] = {}

    async def for_space(self, space_id: int) -> Bot:
        cached = self._cache.get(space_id)
        if cached is not None and time.monotonic() - cached[0] < TTL:
            return cached[2]
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(integrations).where(
                        integrations.c.space_id == space_id, integrations.c.kind == "dialogflow"
                    )
                )
            ).first()
            default = sa.select(spaces.c.is_default).where(spaces.c.id == space_id)
            is_default = row is None and bool((await conn.execute(default)).scalar())
        version = row.updated_at if row is not None else ("default" if is_default else None)
        if cached is not None and cached[1] == version:
            bot = cached[2]
        elif row is None:
            bot = self._default if is_default else self._others
        else:
            factory = bot_factory("dialogflow", f"space {space_id} has a Dialogflow agent")
            bot = factory(
                self._settings,
                project=row.settings["project"],
                credentials_info=self._vault.open(row.credentials) or None,
                language=row.settings.get("language") or "en",
                environment=row.settings.get("environment"),
            )
        self._cache[space_id] = (time.monotonic(), version, bot)
        return bot

    def forget(self, space_id: int) -> None:
        self._cache.pop(space_id, None)
