"""Opt-out keywords: STOP unsubscribes a contact from broadcasts, START subscribes again.

A message whose whole text is a keyword (case, surrounding spaces and trailing
punctuation aside: "Stop!" counts, "please stop" does not) changes
`contacts.unsubscribed_at`; the contact is told once, when the state changes, so a
second STOP gets no answer. A space may replace either list, and the replies, in its
settings (`opt_out_keywords`, `opt_in_keywords`, `opt_out_reply`, `opt_in_reply`); an
empty list turns that keyword off. A word in both lists unsubscribes.

Who holds the conversation decides where the message goes next:

- the bot: the keyword is ours, consumed (True), so the bot never answers STOP with
  "I did not understand"; automations do not see it either (this handler runs first,
  so an automation that closes conversations cannot swallow a STOP). An opt-in keyword
  from a contact who is subscribed changes nothing and goes on to the bot ("start" may
  mean something to it).
- a person or a flow (`agent`, `waiting`, `flow`): the state changes and the reply is
  sent, but the message still reaches them (False): the agent sees what the contact said,
  and a survey's own stop words ("stop", "parar", "sair") still stop the survey. Taking
  STOP for both is the safe reading: a broadcast after a STOP is the costly mistake.

The change is a write in the work item's transaction, conditional on the current
state, and the reply carries the work item's dedupe key: a redelivered webhook or a
re-run work item changes nothing twice and says nothing twice.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable
from functools import partial

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.model import Inbound, MessageReceived, TextPart, text_of
from bot.pipeline.handling import HandlerContext
from bot.storage.tables import contacts
from bot.workspace import conversations as ops

log = logging.getLogger(__name__)

# the usual opt-out words (CTIA's STOP, STOPALL, UNSUBSCRIBE) and their Spanish,
# Portuguese and French kin; not CANCEL, END or QUIT: in a support chat "cancel" is
# about an order, and the bot must still answer it (a space may add them)
OPT_OUT_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "BAJA", "SAIR", "PARAR", "ARRET", "ARRÊT")
# no YES: it answers too many ordinary questions (a survey's, the bot's) to mean consent
OPT_IN_KEYWORDS = ("START", "SUBSCRIBE", "UNSTOP", "ALTA")
OPT_OUT_REPLY = "You will no longer receive broadcasts from us. Send START to subscribe again."
OPT_IN_REPLY = "You are subscribed to our broadcasts again. Send STOP to unsubscribe."
# who has the conversation when the keyword is ours alone
BOT_HANDLERS = frozenset({"bot"})


def normalized(text: str) -> str:
    """Compared form: NFC, case-folded, inner spaces single, trailing punctuation gone."""
    words = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    while words and (unicodedata.category(words[-1]).startswith("P") or words[-1].isspace()):
        words = words[:-1]
    return words


def _words(configured: object, default: Iterable[str]) -> frozenset[str]:
    """The space's list when it has one (even empty), else `default`."""
    chosen = configured if isinstance(configured, list) else list(default)
    return frozenset(n for w in chosen if isinstance(w, str) and (n := normalized(w)))


async def opt_out(event: Inbound | None, ctx: HandlerContext) -> bool:
    """Entry point `chancenter.handlers:03-opt-out`. True: the keyword was for us alone."""
    if not isinstance(event, MessageReceived):
        return False  # automation work items, postbacks, reactions
    text = normalized(text_of(event.parts))
    if not text:
        return False
    conversation = ctx.conversation
    settings = conversation.space_settings
    if text in _words(settings.get("opt_out_keywords"), OPT_OUT_KEYWORDS):
        subscribe = False
    elif text in _words(settings.get("opt_in_keywords"), OPT_IN_KEYWORDS):
        subscribe = True
    else:
        return False
    async with ctx.db.read() as conn:
        since = (
            await conn.execute(
                sa.select(contacts.c.unsubscribed_at).where(
                    contacts.c.id == conversation.contact_id,
                    contacts.c.space_id == conversation.space_id,
                )
            )
        ).scalar()
    changes = (since is None) != subscribe
    ours = conversation.handler in BOT_HANDLERS
    if not changes:
        # STOP again: silence, and still not the bot's; START while subscribed: not ours
        return ours and not subscribe
    outcome: dict[str, bool] = {}  # what the commit did, for one log line after it
    ctx.write(partial(_record, ctx=ctx, subscribe=subscribe, outcome=outcome))
    ctx.then(partial(_log, ctx=ctx, subscribe=subscribe, outcome=outcome))
    settings_key = "opt_in_reply" if subscribe else "opt_out_reply"
    said = settings.get(settings_key) or (OPT_IN_REPLY if subscribe else OPT_OUT_REPLY)
    ctx.reply(TextPart(text=said))
    if ours and ctx.opened:
        # what the routing would have written for a conversation this message opened
        ctx.write(partial(ops.contact_opened, contact_id=conversation.contact_id))
    return ours


async def _record(
    conn: AsyncConnection, ctx: HandlerContext, subscribe: bool, outcome: dict[str, bool]
) -> None:
    """The change, in the work item's transaction; conditional, so it happens once."""
    where = contacts.c.id == ctx.conversation.contact_id
    changed = await conn.execute(
        contacts.update()
        .where(where, contacts.c.unsubscribed_at.is_not(None))
        .values(unsubscribed_at=None)
        if subscribe
        else contacts.update()
        .where(where, contacts.c.unsubscribed_at.is_(None))
        .values(unsubscribed_at=now())
    )
    outcome["changed"] = bool(changed.rowcount)


def _log(ctx: HandlerContext, subscribe: bool, outcome: dict[str, bool]) -> None:
    """One line per committed change (a batch retried one by one still logs once)."""
    if not outcome.get("changed"):
        return
    conversation = ctx.conversation
    log.info(
        "contact subscribed to broadcasts again" if subscribe else "contact unsubscribed",
        extra={
            "contact": conversation.contact_id,
            "space": conversation.space_id,
            "conversation": conversation.id,
        },
    )
