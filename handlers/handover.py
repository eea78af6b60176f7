"""Handing a conversation to people: who gets it, and what the contact hears meanwhile.

Assignment: the requested agent, else round robin among the online members of the
requested team (or the space) under their capacity, else the team's queue
(`waiting`). Away reply: outside business hours or with nobody to take it, once
per window.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.handling import HandlerContext
from bot.ingest import now
from bot.keys import DB, METRICS
from bot.model import AWAY, TextPart
from bot.sender import db_datetime
from bot.storage.tables import (
    assignments,
    conversations,
    space_members,
    team_members,
    teams,
    users,
)

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
    conn: AsyncConnection, space_id: int, team: str | None, agent: str | None
) -> tuple[int | None, int | None]:
    """(user id or None, team id or None)."""
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
    team_id = None
    if team:
        team_id = (
            await conn.execute(
                sa.select(teams.c.id).where(teams.c.space_id == space_id, teams.c.name == team)
            )
        ).scalar()
    open_load = (
        sa.select(sa.func.count())
        .where(conversations.c.assignee_id == users.c.id)
        .where(conversations.c.status == "open")
        .where(conversations.c.handler == "agent")
        .scalar_subquery()
    )
    last_given = (
        sa.select(sa.func.max(assignments.c.id))
        .where(assignments.c.user_id == users.c.id)
        .scalar_subquery()
    )
    query = (
        sa.select(users.c.id)
        .join(space_members, space_members.c.user_id == users.c.id)
        .where(space_members.c.space_id == space_id)
        .where(users.c.availability == "online")
        .where(sa.or_(space_members.c.capacity.is_(None), open_load < space_members.c.capacity))
        # round robin: whoever was given a conversation longest ago (or never) first
        .order_by(sa.func.coalesce(last_given, 0), users.c.id)
        .limit(1)
    )
    if team_id is not None:
        query = query.where(
            users.c.id.in_(
                sa.select(team_members.c.user_id).where(team_members.c.team_id == team_id)
            )
        )
    return (await conn.execute(query)).scalar(), team_id


async def hand_over(
    ctx: HandlerContext,
    trigger: str,
    note: str | None = None,
    team: str | None = None,
    agent: str | None = None,
) -> None:
    conversation = ctx.conversation
    settings, timezone = conversation.space_settings, conversation.timezone
    async with ctx.app[DB].read() as conn:
        user_id, team_id = await pick_assignee(conn, conversation.space_id, team, agent)
    if user_id is not None:
        ctx.hand_over("agent")
        ctx.assignee_id = user_id
    else:
        ctx.hand_over("waiting")
    ctx.team_id = team_id
    ctx.tell_desk("handover", note)
    ctx.app[METRICS].handovers.labels(trigger=trigger).inc()
    log.info(
        "conversation handed to people",
        extra={
            "conversation": conversation.id,
            "trigger": trigger,
            "assignee": user_id,
            "team": team_id,
        },
    )
    at = now()
    window = timedelta(minutes=int(settings.get("away_every_minutes", 720)))
    sent = db_datetime(conversation.away_sent_at)
    recently = sent is not None and at - sent < window
    if (user_id is None or not in_business_hours(settings, timezone, at)) and not recently:
        ctx.away_sent = True
        away_flow = settings.get("away_flow")
        # the away flow asks what they need; with someone assigned, a word is enough
        if user_id is None and away_flow:
            from surveys.engine import start_here

            if await start_here(ctx, away_flow, return_to="waiting"):
                return
        ctx.reply(TextPart(text=settings.get("away_text") or AWAY_TEXT), by=AWAY)
