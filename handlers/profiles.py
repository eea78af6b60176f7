"""A contact's name and picture from their channel, for platforms whose webhooks carry only
an id (Messenger's PSID): the agent desk's thread header then names the contact.

Runs in the worker before routing, never on the webhook's hot path (the webhook is
answered as soon as the message is committed). It never handles the message: whatever the
platform says or fails to say, the next handler runs. The name is written with the
handlers' other effects, in the commit that queues any desk notice, so the thread the
notice opens already shows it. A contact with a name is never looked up again; the
channel remembers its answers for a while (`Channel.profile`), so neither is a sender
Meta refused to describe.
"""

from __future__ import annotations

import logging
from functools import partial

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import ConfigError, NotFound
from bot.keys import CHANNELS
from bot.model import Inbound
from bot.pipeline.handling import HandlerContext
from bot.storage.tables import contacts
from channels.base import Channel, Profile

log = logging.getLogger(__name__)

NAME_LIMIT = 200  # contacts.name's length


async def fill_in_profile(event: Inbound | None, ctx: HandlerContext) -> bool:
    """Entry point `chancenter.handlers:01-profile`; always False, so the next one runs."""
    if event is None or event.sender.name:  # an automation's timer, or a named sender
        return False
    channel = await _channel(ctx)
    if channel is None or type(channel).profile is Channel.profile:
        return False  # this kind looks nobody up: its webhooks carry names, or nothing does
    conversation = ctx.conversation
    # a new contact has no name yet (its sender had none): no need to read it
    if not ctx.created and await _named(ctx, conversation.space_id, conversation.contact_id):
        return False
    found = await channel.profile(event.sender.external_id)
    if found is None:
        return False
    ctx.write(
        partial(
            _store,
            space_id=conversation.space_id,
            contact_id=conversation.contact_id,
            profile=found,
        )
    )
    log.info(
        "contact's profile fetched from the channel",
        extra={
            "contact": conversation.contact_id,
            "channel": channel.id,
            "named": bool(found.name),
        },
    )
    return False


async def _channel(ctx: HandlerContext) -> Channel | None:
    registry = ctx.app.get(CHANNELS)
    if registry is None:
        return None
    try:
        return await registry.get(ctx.conversation.channel_id)
    except (NotFound, ConfigError):  # removed meanwhile, or its package is gone
        return None


async def _named(ctx: HandlerContext, space_id: int, contact_id: int) -> bool:
    async with ctx.db.glance() as conn:
        name = (
            await conn.execute(
                sa.select(contacts.c.name)
                .where(contacts.c.id == contact_id)
                .where(contacts.c.space_id == space_id)
            )
        ).scalar()
    return bool(name)


async def _store(conn: AsyncConnection, space_id: int, contact_id: int, profile: Profile) -> None:
    """Only into a contact still nameless: a name an agent typed meanwhile stays."""
    values: dict[str, str] = {}
    if profile.name:
        values["name"] = profile.name[:NAME_LIMIT]
    if profile.avatar_url:  # Meta's picture URLs expire: the newest is the one to keep
        values["avatar_url"] = profile.avatar_url
    if not values:
        return
    await conn.execute(
        contacts.update()
        .where(contacts.c.id == contact_id)
        .where(contacts.c.space_id == space_id)
        .where(sa.or_(contacts.c.name.is_(None), contacts.c.name == ""))
        .values(**values)
    )
