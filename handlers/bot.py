"""Let the space's bot answer a contact, and honour its request for a human."""

from __future__ import annotations

import logging

from bot.errors import BadCredentials, IntegrationError
from bot.model import Author, Inbound, Postback, Reaction, TextPart, text_of
from bot.pipeline.bots import BotQuery, BotReply
from bot.pipeline.handling import HandlerContext
from bot.storage.tables import integrations

log = logging.getLogger(__name__)

WELCOME = "WELCOME"
EVENT_PREFIX = "event:"
MAX_FALLBACKS = 2  # misses in a row before people take over


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


async def _tell_admins(ctx: HandlerContext, problem: str) -> None:
    """Once per failure, not per message: a log line, the integration's status in the API,
    and a post in the Slack inbox when there is a desk."""
    log.error(
        "bot credentials refused", extra={"space": ctx.conversation.space_id, "error": problem}
    )
    async with ctx.db.write() as conn:
        await conn.execute(
            integrations.update()
            .where(integrations.c.space_id == ctx.conversation.space_id)
            .where(integrations.c.kind == "dialogflow")
            .values(error=problem)
        )
    ctx.tell_desk("alert", problem)


BOT_ERROR_TEXT = "Sorry, I can't answer right now. Please try again in a moment."
NOT_UNDERSTOOD_TEXT = "Sorry, I didn't get that. Could you say it another way?"


async def answer_with_bot(event: Inbound, ctx: HandlerContext) -> bool:
    conversation = ctx.conversation
    bot = await ctx.bots.for_space(conversation.space_id)
    session_id = f"conversation-{conversation.id}"
    queries: list[BotQuery] = []
    if ctx.opened:
        queries.append(
            BotQuery(session_id=session_id, event=WELCOME, language=conversation.language)
        )
    if (query := _query(event, session_id, conversation.language)) is not None:
        queries.append(query)
    by = Author(type="bot", id=bot.name)
    replies: list[BotReply] = []
    failed = False
    for query in queries:
        try:
            reply = await bot.detect(query)
        except IntegrationError as exc:
            # never leave the contact unanswered: say so, count it, hand over if it repeats
            ctx.metrics.bot_errors.inc()
            if isinstance(exc, BadCredentials) and exc.first:
                await _tell_admins(ctx, str(exc))
            else:
                log.warning(
                    "bot failed", extra={"conversation": conversation.id, "error": str(exc)}
                )
            failed = True
            break
        # On a new conversation the welcome already answered a greeting or gibberish.
        if replies and ctx.opened and (reply.fallback or reply.intent == replies[0].intent):
            continue
        replies.append(reply)
    last = replies[-1] if replies else None
    # a handover's announcement is hand_over's to say, or to replace by the away reply
    handing_over = last is not None and last.handover and not last.payload.get("start_flow")
    announce = last.messages if handing_over and last is not None else ()
    for reply in replies:
        if reply is not last or not announce:
            for parts in reply.messages:
                ctx.reply(*parts, by=by)
        ctx.set_fields.update(reply.payload.get("set_fields") or {})
        log.info(
            "bot answered",
            extra={
                "conversation": conversation.id,
                "intent": reply.intent,
                "confidence": reply.confidence,
            },
        )
    if failed:
        ctx.reply(TextPart(text=BOT_ERROR_TEXT), by=by)
    flow = last.payload.get("start_flow") if last is not None else None
    if flow and await ctx.start_flow(str(flow)):
        return True
    if last is not None and last.handover:
        payload = last.payload
        await ctx.hand_to_people(
            "bot",
            note=payload.get("note"),
            team=payload.get("team"),
            agent=payload.get("agent"),
            announce=announce,
            by=by,
        )
        return True
    # a reply with nothing a channel can show (a carousel, speech only) is a miss, not silence
    silent = last is not None and not last.messages
    if silent:
        ctx.reply(TextPart(text=NOT_UNDERSTOOD_TEXT), by=by)
    missed = failed or (last is not None and (last.fallback or silent))
    misses = conversation.bot_fallbacks + 1 if missed else 0
    ctx.bot_fallbacks = misses
    if misses >= MAX_FALLBACKS:
        await ctx.hand_to_people(
            "errors" if failed else "fallbacks",
            note=f"the bot {'failed' if failed else 'did not understand'} {misses} times in a row",
        )
    return True
