"""Admin text commands, the same from any transport: `/link CODE` and `/channel ...`.

From a chat account linked to a space manager or organization admin, `/channel`
commands run and are answered in the chat; from anyone else they are ordinary
messages for the bot.
"""

from __future__ import annotations

import logging
import shlex

from aiohttp import web

from bot.errors import ChanCenterError
from bot.keys import DB
from bot.model import Inbound, MessageReceived, TextPart, text_of
from bot.pipeline.handling import HandlerContext
from bot.workspace import channel_admin
from bot.workspace.links import linked_admin, redeem

log = logging.getLogger(__name__)

USAGE = (
    "Usage:\n"
    "/channel add telegram TOKEN\n"
    "/channel add messenger page_id=… page_token=… app_secret=… verify_token=…\n"
    "/channel add whatsapp phone_number_id=… access_token=… app_secret=… verify_token=…\n"
    "/channel list\n"
    "/channel remove CHANNEL_ID"
)


async def admin_commands(event: Inbound, ctx: HandlerContext) -> bool:
    """Entry point `chancenter.handlers:admin`; True when the message was a command."""
    if not isinstance(event, MessageReceived):
        return False
    text = text_of(event.parts).strip()
    channel_id, sender = ctx.conversation.channel_id, event.sender.external_id
    db = ctx.app[DB]
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


async def channel_command(app: web.Application, space_id: int, text: str) -> str:
    """`/channel add|list|remove ...` for a space, answered in words (also used from Slack)."""
    try:
        words = shlex.split(text)[1:]
    except ValueError as exc:
        return f"Cannot read that: {exc}\n\n{USAGE}"
    try:
        if words[:1] == ["list"]:
            found = await channel_admin.list_channels(app, space_id)
            return "\n".join(f"{c.id}  {c.kind}  {c.name}" for c in found) or "No channels yet."
        if words[:1] == ["remove"] and len(words) == 2:
            await channel_admin.remove_channel(app, space_id, words[1])
            return f"Removed {words[1]}."
        if words[:1] == ["add"] and len(words) >= 3:
            kind, args = words[1], words[2:]
            given = dict(a.split("=", 1) for a in args if "=" in a)
            bare = [a for a in args if "=" not in a]
            if bare:
                given.setdefault("token", bare[0])
            info = await channel_admin.add_channel(app, space_id, kind, given)
            webhook = f"\nWebhook: {info.webhook_url}" if info.webhook_url else ""
            return f"Connected {info.kind} {info.name} as {info.id}.{webhook}"
    except ChanCenterError as exc:
        return f"{exc}"
    return USAGE
