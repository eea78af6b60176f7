"""Connecting, listing and removing channels: what the CLI, the admin chat commands and
the Slack desk share; `channel_command` is the one reading of `/channel ...` (chat and Slack).
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass

import sqlalchemy as sa
from aiohttp import web

from bot.errors import ChanCenterError, ConfigError, NotFound
from bot.keys import CHANNELS, DB, HTTP, SETTINGS
from bot.storage.tables import channels
from bot.workspace.bootstrap import new_channel_id
from bot.workspace.crypto import Vault
from channels.base import Channel, ChannelContext

log = logging.getLogger(__name__)

USAGE = (
    "Usage:\n"
    "/channel add telegram TOKEN\n"
    "/channel add messenger page_id=… page_token=… app_secret=… verify_token=…\n"
    "/channel add whatsapp phone_number_id=… access_token=… app_secret=… verify_token=…\n"
    "/channel list\n"
    "/channel remove CHANNEL_ID"
)


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    kind: str
    name: str
    webhook_url: str | None  # None: the channel takes no webhooks (web chat)


def _info(app: web.Application, channel_id: str, kind: str, name: str) -> ChannelInfo:
    cls = app[CHANNELS].kinds.get(kind)
    # a channel that keeps the base `verify` refuses every webhook: no URL to show
    if cls is None or cls.verify is Channel.verify:
        return ChannelInfo(channel_id, kind, name, None)
    public = str(app[SETTINGS].public_url).rstrip("/")
    return ChannelInfo(channel_id, kind, name, f"{public}/webhooks/{channel_id}")


async def add_channel(
    app: web.Application, space_id: int, kind: str, given: dict[str, str]
) -> ChannelInfo:
    """Check the credentials, store them encrypted, and register our webhook at the platform."""
    registry = app[CHANNELS]
    cls = registry.kinds.get(kind)
    if cls is None:
        raise ConfigError(
            f"unknown channel kind {kind!r}; choose one of: {', '.join(registry.kinds)}"
        )
    ctx = ChannelContext(settings=app[SETTINGS], http=app[HTTP], app=app)
    credentials, name = await cls.prepare(given, ctx)
    channel_id = new_channel_id(kind)
    # model_dump(mode="json") would mask SecretStr values: store the real ones
    sealed = Vault(app[SETTINGS].signing_key()).seal(_reveal(credentials.model_dump()))
    async with app[DB].write() as conn:
        await conn.execute(
            channels.insert().values(
                id=channel_id,
                space_id=space_id,
                kind=kind,
                name=name,
                credentials=sealed,
                settings={},
            )
        )
    channel = await registry.get(channel_id)
    try:
        await channel.connect(str(app[SETTINGS].public_url))
    except Exception:
        await _delete(app, channel_id)
        raise
    log.info("channel added", extra={"channel": channel_id, "kind": kind, "space": space_id})
    return _info(app, channel_id, kind, name)


async def list_channels(app: web.Application, space_id: int) -> list[ChannelInfo]:
    async with app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(channels.c.id, channels.c.kind, channels.c.name)
            .where(channels.c.space_id == space_id)
            .order_by(channels.c.created_at, channels.c.id)
        )
        return [_info(app, r.id, r.kind, r.name) for r in rows]


async def remove_channel(app: web.Application, space_id: int, channel_id: str) -> None:
    """Remove our webhook at the platform, then the channel (its conversations go with it)."""
    async with app[DB].read() as conn:
        found = (
            await conn.execute(
                sa.select(channels.c.id)
                .where(channels.c.id == channel_id)
                .where(channels.c.space_id == space_id)
            )
        ).scalar()
    if found is None:
        raise NotFound(f"no channel {channel_id!r} in this space (see `channels list`)")
    channel = await app[CHANNELS].get(channel_id)
    await channel.disconnect()
    await _delete(app, channel_id)
    log.info("channel removed", extra={"channel": channel_id})


async def channel_command(app: web.Application, space_id: int, text: str) -> str:
    """`/channel add|list|remove ...` for a space, answered in words (chat and Slack)."""
    try:
        words = shlex.split(text)[1:]
    except ValueError as exc:
        return f"Cannot read that: {exc}\n\n{USAGE}"
    try:
        if words[:1] == ["list"]:
            found = await list_channels(app, space_id)
            return "\n".join(f"{c.id}  {c.kind}  {c.name}" for c in found) or "No channels yet."
        if words[:1] == ["remove"] and len(words) == 2:
            await remove_channel(app, space_id, words[1])
            return f"Removed {words[1]}."
        if words[:1] == ["add"] and len(words) >= 3:
            kind, args = words[1], words[2:]
            given = dict(a.split("=", 1) for a in args if "=" in a)
            bare = [a for a in args if "=" not in a]
            if bare:
                given.setdefault("token", bare[0])
            info = await add_channel(app, space_id, kind, given)
            webhook = f"\nWebhook: {info.webhook_url}" if info.webhook_url else ""
            return f"Connected {info.kind} {info.name} as {info.id}.{webhook}"
    except ChanCenterError as exc:
        return f"{exc}"
    return USAGE


async def _delete(app: web.Application, channel_id: str) -> None:
    async with app[DB].write() as conn:
        await conn.execute(channels.delete().where(channels.c.id == channel_id))
    app[CHANNELS].forget(channel_id)


def _reveal(value: object) -> object:
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    get = getattr(value, "get_secret_value", None)
    return get() if get else value
