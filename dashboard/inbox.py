"""The inbox: the space's conversations, most recent activity first, filtered by status,
handler, assignee, team and channel; the list refreshes itself when something happens
(`/app/{space}/events`, server-sent events).

One page is one indexed query: `ix_conversations_space_recent` gives the order,
the preview and the unread count are correlated lookups on `ix_messages_conversation`
for the 50 rows shown only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web

from bot.api.views import visible
from bot.keys import DB
from bot.model import parts_adapter, text_of
from bot.storage.tables import channels, contacts, conversations, messages, teams, users, views
from bot.workspace.contacts import field_defs
from bot.workspace.filters import compile_filter
from dashboard.contacts import saved_filter
from dashboard.session import SPACE, VIEWER, number, page

PAGE = 50
POLL = 1.0  # seconds between looks for news, per open page
PING = 15.0  # seconds of silence before a keep-alive comment
LIFETIME = 3600.0  # seconds a stream lasts before the browser opens a new one
HANDLERS = ("bot", "flow", "waiting", "agent")
_m = messages.alias("latest")
_out = messages.alias("replied")


@dataclass(frozen=True)
class Filters:
    status: str = "open"  # open | closed | all
    handler: str = ""  # one of HANDLERS, or any
    assignee: str = "anyone"  # anyone | mine | unassigned
    team_id: int | None = None
    channel_id: str = ""
    view_id: int | None = None  # the conversations of a saved view's contacts

    @classmethod
    def of(cls, query: Any) -> Filters:
        def pick(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = query.get(name, default)
            return value if value in allowed else default

        team, view = query.get("team", ""), query.get("view", "")
        return cls(
            status=pick("status", ("open", "closed", "all"), "open"),
            handler=pick("handler", ("", *HANDLERS), ""),
            assignee=pick("assignee", ("anyone", "mine", "unassigned"), "anyone"),
            team_id=number(team),
            channel_id=query.get("channel", "")[:32],
            view_id=number(view),
        )


def setup(app: web.Application) -> None:
    app.router.add_get("/app/{space}/inbox", inbox_page)
    app.router.add_get("/app/{space}/inbox/list", inbox_list)
    app.router.add_get("/app/{space}/events", events)


async def conversations_page(
    conn: Any, space_id: int, viewer_id: int, filters: Filters
) -> list[dict[str, Any]]:
    c = conversations.c
    latest = (
        sa.select(_m.c.parts)
        .where(_m.c.conversation_id == c.id, _m.c.direction != "note")
        .order_by(_m.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    replied = (
        sa.select(sa.func.coalesce(sa.func.max(_out.c.id), 0))
        .where(_out.c.conversation_id == c.id, _out.c.direction == "out")
        .correlate(conversations)  # two levels down: the page's row, not every conversation
        .scalar_subquery()
    )
    unread = (
        sa.select(sa.func.count())
        .select_from(_m)
        .where(_m.c.conversation_id == c.id, _m.c.direction == "in", _m.c.id > replied)
        .scalar_subquery()
    )
    query = (
        sa.select(
            c.id,
            c.status,
            c.handler,
            c.closed_at,
            c.last_message_at,
            contacts.c.name.label("contact"),
            channels.c.kind,
            channels.c.name.label("channel"),
            users.c.name.label("assignee"),
            teams.c.name.label("team"),
            latest.label("latest"),
            unread.label("unread"),
        )
        .join(contacts, contacts.c.id == c.contact_id)
        .join(channels, channels.c.id == c.channel_id)
        .outerjoin(users, users.c.id == c.assignee_id)
        .outerjoin(teams, teams.c.id == c.team_id)
        .where(c.space_id == space_id)
        .order_by(c.last_message_at.desc(), c.id.desc())  # `ix_conversations_space_recent`
        .limit(PAGE)
    )
    closed = sa.or_(c.status == "closed", c.closed_at.is_not(None))
    if filters.status != "all":
        query = query.where(closed if filters.status == "closed" else ~closed)
    if filters.handler:
        query = query.where(c.handler == filters.handler)
    if filters.assignee == "mine":
        query = query.where(c.assignee_id == viewer_id)
    elif filters.assignee == "unassigned":
        query = query.where(c.assignee_id.is_(None))
    if filters.team_id is not None:
        query = query.where(c.team_id == filters.team_id)
    if filters.channel_id:
        query = query.where(c.channel_id == filters.channel_id)
    group = await saved_filter(conn, space_id, viewer_id, filters.view_id)
    if group is not None:  # the contacts are joined: the view's filter applies to them
        fields = await field_defs(conn, space_id)
        query = query.where(compile_filter(group, space_id, fields))
    rows = (await conn.execute(query)).all()
    return [
        {
            **row._mapping,
            "preview": text_of(parts_adapter.validate_python(row.latest or []))[:140],
        }
        for row in rows
    ]


async def _context(request: web.Request) -> dict[str, Any]:
    space, viewer = request[SPACE], request[VIEWER]
    filters = Filters.of(request.query)
    async with request.app[DB].read() as conn:
        rows = await conversations_page(conn, space.space_id, viewer.user_id, filters)
        options = {
            "channels": (
                await conn.execute(
                    sa.select(channels.c.id, channels.c.name, channels.c.kind)
                    .where(channels.c.space_id == space.space_id)
                    .order_by(channels.c.name)
                )
            ).all(),
            "teams": (
                await conn.execute(
                    sa.select(teams.c.id, teams.c.name)
                    .where(teams.c.space_id == space.space_id)
                    .order_by(teams.c.name)
                )
            ).all(),
            "views": (
                await conn.execute(
                    sa.select(views.c.id, views.c.name)
                    .where(views.c.space_id == space.space_id, visible(views, viewer.user_id))
                    .order_by(views.c.name)
                )
            ).all(),
        }
    return {
        "viewer": viewer,
        "space": space,
        "filters": filters,
        "rows": rows,
        "query": request.query_string,
        **options,
    }


@page()
@aiohttp_jinja2.template("inbox.html")
async def inbox_page(request: web.Request) -> dict[str, Any]:
    return await _context(request)


@page()
@aiohttp_jinja2.template("_conversations.html")
async def inbox_list(request: web.Request) -> dict[str, Any]:
    return await _context(request)


@page()
async def events(request: web.Request) -> web.StreamResponse:
    """`inbox` whenever the space's conversations move; `conversation-N` when one of
    conversation N's messages is new or changed (a status). Polls one indexed row a
    second, so a browser left open costs the database next to nothing."""
    space_id = request[SPACE].space_id
    watched = request.query.get("conversation", "")
    conversation_id = number(watched)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    last: tuple[Any, ...] | None = None
    quiet = 0.0
    started = time.monotonic()
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        # a closed tab is noticed here (aiohttp does not cancel handlers by default);
        # after an hour the browser reconnects, so no stream outlives its page by much
        while _open(request) and time.monotonic() - started < LIFETIME:
            async with request.app[DB].read() as conn:
                now = await _marks(conn, space_id, conversation_id)
            if last is not None and now[0] != last[0]:
                await response.write(b"event: inbox\ndata: changed\n\n")
            if last is not None and now[1:] != last[1:]:
                await response.write(
                    f"event: conversation-{conversation_id}\ndata: changed\n\n".encode()
                )
            if last is None or quiet >= PING:  # a comment keeps proxies from cutting it
                await response.write(b": watching\n\n")
                quiet = 0.0
            last = now
            await asyncio.sleep(POLL)
            quiet += POLL
    return response


def _open(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and not transport.is_closing()


async def _marks(conn: Any, space_id: int, conversation_id: int | None) -> tuple[Any, ...]:
    """What changes when something happens: the space's newest activity and conversation,
    and the watched conversation's newest message and how many of its messages were sent,
    delivered, read or failed."""
    c = conversations.c
    space = (
        await conn.execute(
            sa.select(sa.func.max(c.last_message_at), sa.func.max(c.id)).where(
                c.space_id == space_id
            )
        )
    ).one()
    if conversation_id is None:
        return (tuple(space),)
    one = (
        await conn.execute(
            sa.select(
                sa.func.max(messages.c.id),
                sa.func.count().filter(messages.c.status != "pending"),
                sa.func.count().filter(messages.c.status.in_(("delivered", "read", "failed"))),
                sa.func.max(c.handler),
                sa.func.max(c.status),
                sa.func.max(c.assignee_id),
            )
            .select_from(conversations)
            .outerjoin(messages, messages.c.conversation_id == c.id)
            .where(c.id == conversation_id, c.space_id == space_id)
        )
    ).one()
    return (tuple(space), *one)
