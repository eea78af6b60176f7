"""The routing chain: people -> active flow -> bot.

A conversation is the bot's until it is handed over (the bot asks, it misses
twice in a row, or the contact asks for a person); from then on the bot is
silent and the contact's messages go to the agent desk. While a flow runs, the
contact's messages answer it.
"""

from __future__ import annotations

import logging
from functools import partial

from bot.model import Inbound, MessageReceived, Postback, TextPart, text_of
from bot.pipeline.handling import HandlerContext
from bot.workspace import conversations as ops
from handlers.bot import answer_with_bot
from handlers.handover import asks_for_human
from surveys.engine import run_flow

log = logging.getLogger(__name__)

HANDOVER_TEXT = "Sure, I'm getting a person to help you."


async def route(event: Inbound | None, ctx: HandlerContext) -> bool:
    """Entry point `chancenter.handlers:route`."""
    if event is None:  # an automation's timer: the automations handled it
        return True
    conversation = ctx.conversation
    if ctx.opened:
        # the views' `status` follows: kept off the ingest's hot path, written with the
        # handlers' effects (a close sets it back to `closed`)
        ctx.write(partial(ops.contact_opened, contact_id=conversation.contact_id))
    # an automation may have handed the conversation on before the routing
    handler = ctx.new_handler or conversation.handler
    if handler in ("waiting", "agent"):
        if isinstance(event, MessageReceived | Postback):
            ctx.tell_desk("message")
        return True
    if ctx.new_handler == "flow":  # a flow just started here: it asked its first question
        return True
    if handler == "flow" and await run_flow(event, ctx):
        return True
    if handler not in ("bot", "flow"):
        return True
    if isinstance(event, MessageReceived):
        settings = conversation.space_settings
        if asks_for_human(text_of(event.parts), conversation.language, settings):
            said = TextPart(text=settings.get("handover_text") or HANDOVER_TEXT)
            await ctx.hand_to_people(
                "keyword", note="the contact asked for a person", announce=[(said,)]
            )
            return True
    return await answer_with_bot(event, ctx)
