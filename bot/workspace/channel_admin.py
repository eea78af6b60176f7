"""Connecting, listing, changing and removing channels: the one implementation the REST
API, the CLI, the admin chat commands and the Slack desk share; `channel_command` is the
one reading of `/channel ...` (chat and Slack).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import ChanCenterError, ConfigError, NotFound, Unprocessable
from bot.keys import CHANNELS, DB, HTTP, SETTINGS
from bot.storage.tables import channels
from bot.workspace.bootstrap import new_channel_id
from bot.workspace.channel_health import Health, health
from bot.workspace.crypto import Vault
from channels.base import ChannelContext

log = logging.getLogger(__name__)

USAGE = (
    "Usage:\n"
    "/channel add telegram TOKEN\n"
    "/channel add messenger page_id=… page_token=… app_secret=… verify_token=…\n"
    "/channel add whatsapp phone_number_id=… access_token=… app_secret=… verify_token=…\n"
    "/channel add botframework app_id=… app_password=… [tenant_id=…]\n"
    "/channel list\n"
    "/channel set CHANNEL_ID name=… per_second=… groups=on|off (empty: the default)\n"
    "/channel remove CHANNEL_ID"
)
NAME_LENGTH = 200  # the column's


class ChannelSettings(BaseModel):
    """A channel's own settings. A change names only what it changes; null puts a setting
    back to its default. Example: `{"per_second": 50, "groups": true}`."""

    model_config = ConfigDict(extra="forbid")

    per_second: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="messages a second the hub sends at most on this channel (a Telegram "
        "bot with paid broadcasts may send more than 30); null: the platform's limit",
    )
    groups: bool | None = Field(
        None,
        description="Telegram: take in messages from groups the bot is in (the group is "
        "the contact and its conversation); default false: private chats only",
    )


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    kind: str
    name: str
    webhook_url: str | None  # None: the channel takes no webhooks (web chat)
    settings: Mapping[str, Any] = field(default_factory=dict)
    health: Health = field(default_factory=Health)

    def as_json(self) -> dict[str, Any]:
        """What the API and `--json` answer (credentials never leave the database)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "webhook_url": self.webhook_url,
            "settings": dict(self.settings),
            "health": self.health.as_json(),
        }


def _info(
    app: web.Application,
    row: Any,
    found: Mapping[str, Health] | None = None,
) -> ChannelInfo:
    """A stored channel (`id`, `kind`, `name`, `settings`), with its health when read."""
    cls = app[CHANNELS].kinds.get(row.kind)
    url = None
    if cls is not None and cls.takes_webhooks():
        url = f"{str(app[SETTINGS].public_url).rstrip('/')}/webhooks/{row.id}"
    state = (found or {}).get(row.id, Health())
    return ChannelInfo(row.id, row.kind, row.name, url, row.settings or {}, state)


@dataclass(frozen=True)
class _Row:
    """A channel as `_COLUMNS` reads it, for one not read back (just added)."""

    id: str
    kind: str
    name: str
    settings: Mapping[str, Any]


_COLUMNS = (channels.c.id, channels.c.kind, channels.c.name, channels.c.settings)


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
    return _info(app, _Row(channel_id, kind, name, {}))


async def list_channels(app: web.Application, space_id: int) -> list[ChannelInfo]:
    """The space's channels, oldest first, each with its health."""
    async with app[DB].read() as conn:
        rows = (
            await conn.execute(
                sa.select(*_COLUMNS)
                .where(channels.c.space_id == space_id)
                .order_by(channels.c.created_at, channels.c.id)
            )
        ).all()
        found = await health(conn, [r.id for r in rows])
    return [_info(app, r, found) for r in rows]


async def get_channel(app: web.Application, space_id: int, channel_id: str) -> ChannelInfo:
    async with app[DB].read() as conn:
        row = await _row(conn, space_id, channel_id)
        found = await health(conn, [row.id])
    return _info(app, row, found)


async def change_channel(
    app: web.Application,
    space_id: int,
    channel_id: str,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> ChannelInfo:
    """Rename the channel and/or change its settings (`Unprocessable` naming what is
    wrong); the hub's next use of the channel (webhook, send) sees the change."""
    change = _settings(settings or {})
    if name is not None and not 0 < len(name.strip()) <= NAME_LENGTH:
        raise Unprocessable(f"name: from 1 to {NAME_LENGTH} characters")
    async with app[DB].write() as conn:
        row = await _row(conn, space_id, channel_id, lock=True)
        cls = app[CHANNELS].kinds.get(row.kind)
        if change.get("groups") is not None and not (cls and cls.group_chats):
            raise Unprocessable(f"settings.groups: {row.kind} channels have no group chats")
        merged = {**(row.settings or {}), **change}
        merged = {key: value for key, value in merged.items() if value is not None}
        values: dict[str, Any] = {"settings": merged}
        if name is not None:
            values["name"] = name.strip()
        await conn.execute(channels.update().where(channels.c.id == row.id).values(**values))
    app[CHANNELS].forget(channel_id)  # rebuilt on next use, with its new settings
    log.info("channel changed", extra={"channel": channel_id, "settings": sorted(change)})
    return await get_channel(app, space_id, channel_id)


def _settings(given: Mapping[str, Any]) -> dict[str, Any]:
    """The keys given, validated (null: back to the default)."""
    try:
        checked = ChannelSettings.model_validate(dict(given))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = ", ".join(ChannelSettings.model_fields)
            raise Unprocessable(f"settings.{where}: unknown setting; known: {known}") from None
        raise Unprocessable(f"settings.{where}: {err['msg']}") from None
    return checked.model_dump(include=checked.model_fields_set)


async def _row(conn: Any, space_id: int, channel_id: str, lock: bool = False) -> Any:
    query = (
        sa.select(*_COLUMNS)
        .where(channels.c.id == channel_id)
        .where(channels.c.space_id == space_id)
    )
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"no channel {channel_id!r} in this space (see `channels list`)")
    return row


async def remove_channel(app: web.Application, space_id: int, channel_id: str) -> None:
    """Remove our webhook at the platform, then the channel (its conversations go with it)."""
    async with app[DB].read() as conn:
        await _row(conn, space_id, channel_id)
    channel = await app[CHANNELS].get(channel_id)
    await channel.disconnect()
    await _delete(app, channel_id)
    log.info("channel removed", extra={"channel": channel_id})


async def channel_command(app: web.Application, space_id: int, text: str) -> str:
    """`/channel add|list|set|remove ...` for a space, answered in words (chat and Slack)."""
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
        pairs = [w.split("=", 1) for w in words[2:]]
        if words[:1] == ["set"] and len(words) >= 3 and all(len(p) == 2 for p in pairs):
            given = {key: value or None for key, value in pairs}  # `key=`: the default
            name = given.pop("name", None)
            info = await change_channel(app, space_id, words[1], name, given)
            shown = " ".join(f"{k}={v}" for k, v in info.settings.items())
            return f"Changed {info.id}: {info.name}" + (f" ({shown})" if shown else "")
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
