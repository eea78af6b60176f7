"""Starting a survey for contacts from outside a conversation: an agent, the API, a view,
or the satisfaction survey when a conversation closes.

The satisfaction survey belongs to the conversation just closed: it is asked there, and
the conversation stays reachable by the contact's answer (status `open`, handler
`flow`, `closed_at` kept) until the flow ends or expires and closes it for good
(`return_to="closed"`); no conversation is opened for it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from bot.clock import db_datetime, now
from bot.delivery.sender import UNREACHABLE
from bot.errors import NotFound
from bot.keys import DB, PLUGINS, SENDER
from bot.model import Author, Reach
from bot.storage.tables import channels, conversations, flow_runs, identities, messages, spaces
from bot.workspace import conversations as ops
from surveys.definition import END, Survey
from surveys.engine import facts, find_survey, walk

log = logging.getLogger(__name__)

JUST_CLOSED = timedelta(minutes=10)  # a close older than this asks no survey


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
        why = await _unreachable(app, conn, latest.identity_id, latest.kind, latest.blocked)
        if why:
            return why
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
    await ops.contact_opened(conn, contact_id)
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


async def _unreachable(
    app: web.Application, conn: Any, identity_id: int, kind_name: str, blocked: int
) -> str | None:
    """Why a message cannot reach this identity now, or None."""
    if blocked:
        return UNREACHABLE[Reach(blocked)]
    kind = app[PLUGINS].channels.get(kind_name)
    window = kind.capabilities.window_hours if kind and kind.capabilities else None
    if window is None:
        return None
    last_in = (
        await conn.execute(
            sa.select(sa.func.max(messages.c.created_at))
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .where(conversations.c.identity_id == identity_id)
            .where(messages.c.direction == "in")
        )
    ).scalar()
    if last_in is None or now() - db_datetime(last_in) > timedelta(hours=window):
        return f"outside {kind_name}'s {window}-hour window"
    return None


async def after_close(app: web.Application, conversation_id: int) -> None:
    """The space's satisfaction survey, if it has one, asked in the conversation just
    closed, when a person handled it (or the space says `csat_bot_conversations`)."""
    try:
        async with app[DB].write() as conn:
            skipped = await _ask_after_close(app, conn, conversation_id)
    except IntegrityError:  # the contact wrote meanwhile: that opened a new conversation
        skipped = "the contact wrote again meanwhile"
    except NotFound as exc:
        log.warning("satisfaction survey not found", extra={"error": str(exc)})
        return
    if skipped:
        log.info(
            "satisfaction survey not sent",
            extra={"conversation": conversation_id, "why": skipped},
        )
    elif skipped is None:
        app[SENDER].notify()


async def _ask_after_close(app: web.Application, conn: Any, conversation_id: int) -> str | None:
    """None once asked; else why not ("" when the space has no satisfaction survey)."""
    c = conversations.c
    row = (
        await conn.execute(
            sa.select(conversations, spaces.c.settings, channels.c.kind, identities.c.blocked)
            .join(spaces, spaces.c.id == c.space_id)
            .join(channels, channels.c.id == c.channel_id)
            .join(identities, identities.c.id == c.identity_id)
            .where(c.id == conversation_id)
        )
    ).one()
    settings = row.settings or {}
    if not (which := settings.get("csat_survey")):
        return ""
    if row.status != "closed":
        return "the conversation is not closed"
    closed_at = db_datetime(row.closed_at)
    if closed_at is None or now() - closed_at > JUST_CLOSED:  # closing it again, later
        return "closed a while ago"
    newer = sa.select(c.id).where(c.identity_id == row.identity_id, c.id > conversation_id)
    if (await conn.execute(newer.limit(1))).first():
        return "the contact wrote again since"
    asked = sa.select(flow_runs.c.id).where(flow_runs.c.conversation_id == conversation_id)
    if (await conn.execute(asked.where(flow_runs.c.return_to == "closed"))).first():
        return "already asked"
    if not settings.get("csat_bot_conversations") and not await _person_handled(conn, row):
        return "only the bot talked with them"
    if why := await _unreachable(app, conn, row.identity_id, row.kind, row.blocked):
        return why
    survey_id, survey = await find_survey(conn, row.space_id, which)
    values, tags_ = await facts(conn, row.contact_id)
    steps, waiting = walk(survey, survey.steps[0].id, values, tags_, values.get("language"))
    # reachable again by the contact's answer; their identity has no other open conversation
    # (the unique index refuses a second one if they wrote meanwhile)
    await conn.execute(
        conversations.update()
        .where(c.id == conversation_id, c.status == "closed")
        .values(status="open", handler="flow")
    )
    at = now()
    run_id = (
        await conn.execute(
            flow_runs.insert()
            .values(
                survey_id=survey_id,
                space_id=row.space_id,
                conversation_id=conversation_id,
                contact_id=row.contact_id,
                status="sent" if waiting != END else "completed",
                step=None if waiting == END else waiting,
                answers={},
                return_to="closed",
                created_at=at,
                updated_at=at,
                finished_at=at if waiting == END else None,
            )
            .returning(flow_runs.c.id)
        )
    ).scalar_one()
    conversation = await ops.get(conn, conversation_id)
    by = Author.survey(survey_id)
    for n, parts in enumerate(steps):
        await ops.queue_agent_message(
            app[DB], conn, conversation, list(parts), None, f"flow:{run_id}:{n}", by
        )
    if waiting == END:  # nothing to answer: only said something
        await ops.close_for_good(conn, conversation_id)
    return None


async def _person_handled(conn: Any, conversation: Any) -> bool:
    """A person held it at the close, or wrote in it."""
    if conversation.handler == "agent":
        return True
    wrote = (
        await conn.execute(
            sa.select(messages.c.id)
            .where(messages.c.conversation_id == conversation.id)
            .where(messages.c.sender_type == "user")
            .limit(1)
        )
    ).first()
    return wrote is not None
