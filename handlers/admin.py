"""Admin text commands, the same from any transport: `/link CODE` and `/channel ...`.

From a chat account linked to a space manager or organization admin, `/channel`
commands run and are answered in the chat; from anyone else they are ordinary
messages for the bot.
"""

from __future__ import annotations

import logging

from bot.model import Inbound, MessageReceived, TextPart, text_of
from bot.pipeline.handling import HandlerContext
from bot.workspace.channel_admin import channel_command
from bot.workspace.links import linked_admin, redeem

log = logging.getLogger(__name__)


async def admin_commands(event: Inbound, ctx: HandlerContext) -> bool:
    """Entry point `chancenter.handlers:admin`; True when the message was a command."""
    if not isinstance(event, MessageReceived):
        return False
    text = text_of(event.parts).strip()
    channel_id, sender = ctx.conversation.channel_id, event.sender.external_id
    db = ctx.db
    if text.lower().startswith("/link "):
        async with db.write() as conn:
            user = await redeem(conn, text.split(maxsplit=1)[1], channel_id, sender)
        if user is None:
            ctx.reply(
                TextPart(
                    text="That code is not valid (or it expired). "
                    "Ask for a new one with `chancenter users link`."
                )
            )
        else:
            log.info("chat account linked", extra={"user": user, "channel": channel_id})
            ctx.reply(TextPart(text="Linked. You can now manage channels from here: /channel"))
        return True
    if not (text == "/channel" or text.startswith("/channel ")):
        return False
    async with db.read() as conn:
        user = await linked_admin(conn, channel_id, sender)
    if user is None:
        return False  # not an admin: an ordinary message
    ctx.reply(TextPart(text=await channel_command(ctx.app, ctx.conversation.space_id, text)))
    return True
