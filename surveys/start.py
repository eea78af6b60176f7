"""Starting a survey for contacts from outside a conversation: an agent, the API, a view,
or the satisfaction survey when a conversation closes."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from bot import conversation_ops as ops
from bot.ingest import now
from bot.keys import DB, PLUGINS, SENDER
from bot.model import Author, Reach
from bot.sender import UNREACHABLE, db_datetime
from bot.storage.tables import channels, conversations, flow_runs, identities, messages, spaces
from surveys.definition import END, Survey
from surveys.engine import facts, find_survey, walk

log = logging.getLogger(__name__)


async def start_for_contact(
    app: web.Application,
    space_id: int,
    survey_id: int,
    survey: Survey,
    contact_id: int,
    by_agent: bool = False,
) -> str | None:
    """Ask the survey's first question on the contact's latest chat; None, or why not.

    `by_agent`: the person talking with the contact starts it, and gets them back after."""
    db = app[DB]
    async with db.write() as conn:
        latest = (
            await conn.execute(
                sa.select(
                    conversations.c.identity_id,
                    conversations.c.channel_id,
                    channels.c.kind,
                    identities.c.blocked,
                )
                .join(channels, channels.c.id == conversations.c.channel_id)
                .join(identities, identities.c.id == conversations.c.identity_id)
                .where(conversations.c.contact_id == contact_id)
                .where(conversations.c.space_id == space_id)
                .order_by(conversations.c.id.desc())
                .limit(1)
            )
        ).first()
        if latest is None:
            return "no chat to reach them on"
        if latest.blocked:
            return UNREACHABLE[Reach(latest.blocked)]
        kind = app[PLUGINS].channels.get(latest.kind)
        window = kind.capabilities.window_hours if kind and kind.capabilities else None
        if window is not None:
            last_in = (
                await conn.execute(
                    sa.select(sa.func.max(messages.c.created_at))
                    .join(conversations, conversations.c.id == messages.c.conversation_id)
                    .where(conversations.c.identity_id == latest.identity_id)
                    .where(messages.c.direction == "in")
                )
            ).scalar()
            if last_in is None or now() - db_datetime(last_in) > timedelta(hours=window):
                return f"outside {latest.kind}'s {window}-hour window"
        conversation = await _open_conversation(conn, space_id, contact_id, latest)
        if conversation.handler in ("waiting", "agent") and not by_agent:
            return "a person is talking with them"
        if conversation.handler == "flow":
            return "already answering a survey"
        values, tags_ = await facts(conn, contact_id)
        language = values.get("language")
        steps, waiting = walk(survey, survey.steps[0].id, values, tags_, language)
        at = now()
        run_id = (
            await conn.execute(
                flow_runs.insert()
                .values(
                    survey_id=survey_id,
                    space_id=space_id,
                    conversation_id=conversation.id,
                    contact_id=contact_id,
                    status="sent" if waiting != END else "completed",
                    step=None if waiting == END else waiting,
                    answers={},
                    return_to=conversation.handler if by_agent else "bot",
                    created_at=at,
                    updated_at=at,
                    finished_at=at if waiting == END else None,
                )
                .returning(flow_runs.c.id)
            )
        ).scalar_one()
        if waiting != END:
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == conversation.id)
                .values(handler="flow")
            )
        by = Author.survey(survey_id)
        for n, parts in enumerate(steps):
            await ops.queue_agent_message(
                db, conn, conversation, list(parts), None, f"flow:{run_id}:{n}", by
            )
    app[SENDER].notify()
    return None


async def _open_conversation(conn: Any, space_id: int, contact_id: int, latest: Any) -> Any:
    """The identity's open conversation, or a new one."""
    found = (
        await conn.execute(
            sa.select(conversations)
            .where(conversations.c.identity_id == latest.identity_id)
            .where(conversations.c.status == "open")
        )
    ).first()
    if found is not None:
        return found
    conversation_id = (
        await conn.execute(
            conversations.insert()
            .values(
                space_id=space_id,
                contact_id=contact_id,
                channel_id=latest.channel_id,
                identity_id=latest.identity_id,
                created_at=now(),
            )
            .returning(conversations.c.id)
        )
    ).scalar_one()
    return await ops.get(conn, conversation_id)


async def after_close(app: web.Application, conversation_id: int) -> None:
    """The space's satisfaction survey, if it has one, goes to the contact just served."""
    async with app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(conversations.c.space_id, conversations.c.contact_id, spaces.c.settings)
                .join(spaces, spaces.c.id == conversations.c.space_id)
                .where(conversations.c.id == conversation_id)
            )
        ).one()
        which = (row.settings or {}).get("csat_survey")
        if not which:
            return
        survey_id, survey = await find_survey(conn, row.space_id, which)
    skipped = await start_for_contact(app, row.space_id, survey_id, survey, row.contact_id)
    if skipped:
        log.info("satisfaction survey not sent", extra={"contact": row.contact_id, "why": skipped})
