"""Handing a conversation to people: who gets it, and what the contact hears meanwhile.

Assignment: the requested agent, else the contact's assignee when available, else
round robin among the online members of the requested team (or the space) under
their capacity, else the team's queue (`waiting`); outside business hours nobody
unless the space says `assign_outside_hours`. Away reply: outside business hours
(then instead of the trigger's "getting a person") or with nobody to take it, once
per window.

`hand_over` is the `chancenter.handover` entry point: flows reach it through their
handler context (`ctx.hand_to_people`), and it starts the away flow through the same
context (`ctx.start_flow`), so neither package imports the other for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import db_datetime, now
from bot.model import AWAY, BOT, Author, Part, TextPart
from bot.pipeline.handling import HandlerContext, Write
from bot.storage.tables import contacts, space_members, users
from bot.workspace import members
from bot.workspace.triggers import fire

log = logging.getLogger(__name__)

KEYWORDS = {
    "en": ("agent", "human", "person", "operator"),
    "es": ("agente", "humano", "persona"),
    "pt": ("agente", "humano", "atendente", "pessoa"),
}
AWAY_TEXT = (
    "Thanks for your message! Our team is away right now; "
    "we'll answer here as soon as someone is back."
)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def asks_for_human(text: str, language: str | None, settings: dict[str, Any]) -> bool:
    """The whole message is a handover keyword ("agent", "humano", ...)."""
    words = settings.get("handover_keywords") or KEYWORDS
    wanted = text.strip().strip("!.?¡¿").casefold()
    lang = (language or "en").split("-")[0]
    return wanted in {w.casefold() for w in (*words.get(lang, ()), *words.get("en", ()))}


def in_business_hours(settings: dict[str, Any], timezone: str, at: datetime) -> bool:
    """No schedule means always open. `days`: {"mon": ["09:00", "18:00"], ...}."""
    days = settings.get("days")
    if not days:
        return True
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(ZoneInfo(timezone))
    if local.date().isoformat() in settings.get("holidays", []):
        return False
    hours = days.get(DAYS[local.weekday()])
    if not hours:
        return False
    return hours[0] <= local.strftime("%H:%M") < hours[1]


async def pick_assignee(
    conn: AsyncConnection,
    space_id: int,
    team: str | None,
    agent: str | None,
    contact_id: int | None = None,
) -> tuple[int | None, int | None]:
    """(user id or None, team id or None): the agent named, else the contact's assignee
    when available, else round robin in the team (or the space)."""
    if agent:
        user_id = (
            await conn.execute(
                sa.select(users.c.id)
                .join(space_members, space_members.c.user_id == users.c.id)
                .where(space_members.c.space_id == space_id)
                .where(sa.or_(users.c.email == agent, users.c.name == agent))
            )
        ).scalar()
        if user_id is not None:
            return user_id, None
    team_id = await members.team_named(conn, space_id, team)
    prefer = None
    if contact_id is not None:
        prefer = (
            await conn.execute(sa.select(contacts.c.assignee_id).where(contacts.c.id == contact_id))
        ).scalar()
    return await members.available_member(conn, space_id, team_id, prefer), team_id


async def hand_over(
    ctx: HandlerContext,
    trigger: str,
    note: str | None = None,
    team: str | None = None,
    agent: str | None = None,
    announce: Sequence[Sequence[Part]] = (),
    by: Author = BOT,
) -> None:
    """Hand the conversation to people. The contact hears `announce` (what the trigger
    says, e.g. "getting a person"), then the away reply if nobody can take it (once per
    window); outside business hours the away reply alone, one coherent answer, and nobody
    is assigned unless the space says `assign_outside_hours`."""
    conversation = ctx.conversation
    settings, timezone = conversation.space_settings, conversation.timezone
    at = now()
    open_now = in_business_hours(settings, timezone, at)
    async with ctx.db.read() as conn:
        if open_now or settings.get("assign_outside_hours"):
            user_id, team_id = await pick_assignee(
                conn, conversation.space_id, team, agent, conversation.contact_id
            )
        else:
            user_id, team_id = None, await members.team_named(conn, conversation.space_id, team)
    if user_id is not None:
        ctx.hand_over("agent")
        ctx.assignee_id = user_id
        ctx.write(
            partial(
                fire,
                space_id=conversation.space_id,
                trigger="conversation_assigned",
                contact_id=conversation.contact_id,
                conversation_id=conversation.id,
                depth=ctx.depth,
                user_id=user_id,
                team_id=team_id,
            )
        )
    else:
        ctx.hand_over("waiting")
    ctx.team_id = team_id
    ctx.write(_contact_assigned(conversation.contact_id, user_id, team_id))
    ctx.tell_desk("handover", note)
    ctx.metrics.handovers.labels(trigger=trigger).inc()
    log.info(
        "conversation handed to people",
        extra={
            "conversation": conversation.id,
            "trigger": trigger,
            "assignee": user_id,
            "team": team_id,
        },
    )
    window = timedelta(minutes=int(settings.get("away_every_minutes", 720)))
    sent = db_datetime(conversation.away_sent_at)
    recently = sent is not None and at - sent < window
    away = (user_id is None or not open_now) and not recently
    if open_now or not away:  # outside hours the away reply is the one answer
        for parts in announce:
            ctx.reply(*parts, by=by)
    if not away:
        return
    ctx.away_sent = True
    away_flow = settings.get("away_flow")
    # the away flow asks what they need; with someone assigned, a word is enough
    if user_id is None and away_flow and await ctx.start_flow(away_flow, return_to="waiting"):
        return
    ctx.reply(TextPart(text=settings.get("away_text") or AWAY_TEXT), by=AWAY)


def _contact_assigned(contact_id: int, user_id: int | None, team_id: int | None) -> Write:
    """The contact is given to whoever took the conversation (and to its team); with
    nobody free it stays its assignee's, who gets it first next time."""
    values: dict[str, Any] = {}
    if user_id is not None:
        values["assignee_id"] = user_id
    if team_id is not None:
        values["team_id"] = team_id

    async def write(conn: AsyncConnection) -> None:
        if values:
            await conn.execute(
                contacts.update().where(contacts.c.id == contact_id).values(**values)
            )

    return write
