"""The routing chain: automations -> active flow -> agent -> bot.

Automations and flows arrive with their issues; today a conversation is the
bot's until the bot hands it over, and then the bot stays silent.
"""

from __future__ import annotations

import logging

from bot.handling import HandlerContext
from bot.model import Inbound
from handlers.bot import answer_with_bot

log = logging.getLogger(__name__)


async def route(event: Inbound, ctx: HandlerContext) -> bool:
    """Entry point `chancenter.handlers:route`."""
    if ctx.conversation.handler == "bot":
        return await answer_with_bot(event, ctx)
    log.debug(
        "bot silent: conversation is not the bot's",
        extra={"conversation": ctx.conversation.id, "handler": ctx.conversation.handler},
    )
    return True
