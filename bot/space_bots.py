"""Each space's bot: its own Dialogflow agent when it has one, else the process default.

Built once per space and kept; a change through the API forgets it at once in this
process, and other processes notice within `TTL` seconds.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from bot.bots import Bot
from bot.crypto import Vault
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.tables import integrations

TTL = 30.0


class SpaceBots:
    def __init__(self, default: Bot, db: Database, settings: Settings) -> None:
        self._default = default
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
        version = row.updated_at if row is not None else None
        if cached is not None and cached[1] == version:
            bot = cached[2]
        elif row is None:
            bot = self._default
        else:
            from integrations.dialogflow import DialogflowBot

            bot = DialogflowBot(
                row.settings["project"],
                self._settings.dialogflow_endpoint,
                credentials_info=self._vault.open(row.credentials) or None,
                language=row.settings.get("language") or "en",
                environment=row.settings.get("environment"),
                timeout=self._settings.dialogflow_timeout,
            )
        self._cache[space_id] = (time.monotonic(), version, bot)
        return bot

    def forget(self, space_id: int) -> None:
        self._cache.pop(space_id, None)
