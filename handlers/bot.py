"""Let the space's bot answer a contact, and honour its request for a human."""

from __future__ import annotations

import logging

from bot.bots import BotQuery, BotReply
from bot.handling import HandlerContext
from bot.model import Inbound, Postback, Reaction, text_of

log = logging.getLogger(__name__)

WELCOME = "WELCOME"
EVENT_PREFIX = "event:"


def _query(event: Inbound, session_id: str, language: str | None) -> BotQuery | None:
    """A postback `event:NAME` is a Dialogflow event; anything else is its text."""
    if isinstance(event, Reaction):
        return None
    if isinstance(event, Postback) and event.payload.startswith(EVENT_PREFIX):
        return BotQuery(
            session_id=session_id, event=event.payload[len(EVENT_PREFIX) :], language=language
        )
    text = event.payload if isinstance(event, Postback) else text_of(event.parts)
    return BotQuery(session_id=session_id, text=text, language=language) if text.strip() else None


async def answer_with_bot(event: Inbound, ctx: HandlerContext) -> bool:
    conversation = ctx.conversation
    bot = ctx.bots.for_space(conversation.space_id)
    session_id = f"conversation-{conversation.id}"
    replies: list[BotReply] = []
    if ctx.opened:
        replies.append(
            await bot.detect(
                BotQuery(session_id=session_id, event=WELCOME, language=conversation.language)
            )
        )
    query = _query(event, session_id, conversation.language)
    if query is not None:
        reply = await bot.detect(query)
        # On a new conversation the welcome already answered a greeting or gibberish.
        if not (ctx.opened and (reply.fallback or reply.intent == replies[0].intent)):
            replies.append(reply)
    for reply in replies:
        for parts in reply.messages:
            ctx.reply(*parts)
        log.info(
            "bot answered",
            extra={
                "conversation": conversation.id,
                "intent": reply.intent,
                "confidence": reply.confidence,
            },
        )
        if reply.handover:
            ctx.hand_over("agent")
            log.info("bot asked for a human", extra={"conversation": conversation.id})
    return True
