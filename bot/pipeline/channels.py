"""Channel objects for stored channel rows, built on first use and kept per app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import sqlalchemy as sa

from bot.errors import ConfigError, NotFound
from bot.storage.db import Database
from bot.storage.tables import channels
from bot.workspace.crypto import Vault
from channels.base import Channel, ChannelConfig, ChannelContext

log = logging.getLogger(__name__)


class ChannelRegistry:
    """`channel_id -> Channel`, loaded lazily from the database."""

    def __init__(
        self, db: Database, kinds: Mapping[str, type[Channel]], ctx: ChannelContext
    ) -> None:
        self._db = db
        self._kinds = kinds
        self._ctx = ctx
        self._cache: dict[str, Channel] = {}
        self._loading = asyncio.Lock()
        self._vault = Vault(ctx.settings.signing_key())

    @property
    def kinds(self) -> Mapping[str, type[Channel]]:
        return self._kinds

    async def get(self, channel_id: str) -> Channel:
        channel = self._cache.get(channel_id)
        if channel is None:
            # one instance per channel, however many senders ask at once: its rate
            # buckets are the channel's (a second instance would be a second budget)
            async with self._loading:
                channel = self._cache.get(channel_id)
                if channel is None:
                    channel = self._cache[channel_id] = await self._load(channel_id)
        return channel

    def forget(self, channel_id: str) -> None:
        self._cache.pop(channel_id, None)

    async def close(self) -> None:
        """Close every channel built, when the hub stops."""
        channels, self._cache = list(self._cache.values()), {}
        for channel in channels:
            await channel.close()

    async def _load(self, channel_id: str) -> Channel:
        async with self._db.read() as conn:
            row = (
                await conn.execute(sa.select(channels).where(channels.c.id == channel_id))
            ).first()
        if row is None:
            raise NotFound(f"no channel {channel_id!r}")
        cls = self._kinds.get(row.kind)
        if cls is None:
            raise ConfigError(
                f"channel {channel_id} is of kind {row.kind!r}, which no installed package "
                f"provides (known: {', '.join(sorted(self._kinds))})"
            )
        credentials = cls.credentials_model.model_validate(self._vault.open(row.credentials))
        config = ChannelConfig(
            id=row.id,
            space_id=row.space_id,
            kind=row.kind,
            name=row.name,
            credentials=credentials,
            settings=row.settings or {},
        )
        return cls(config, self._ctx)
