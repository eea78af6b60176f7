"""`/api/v1/broadcasts`: create a broadcast, move it through its life, read its progress.

Managers create, start, pause, resume and cancel; agents read. A body that does not parse
is a 400 naming the field, one that names what the space lacks (or the channel cannot
send) a 422, a taken name a 409, another space's broadcast a 404. State changes are the
store's conditional updates, so a move the state does not allow is a 409 saying why.

Recipients exist once the runner has planned a started broadcast. Their report is paged
by id, and the CSV is written a page at a time: 100,000 rows never sit in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.api.auth import PRINCIPAL
from bot.api.openapi import BEFORE, CSV, LIMIT, OBJECT, Handler, Routes, list_of, query_param
from bot.api.params import int_query, json_body, known_query, page_limit, path_id
from bot.api.roles import require
from bot.clock import iso
from bot.errors import InvalidPayload
from bot.keys import DB
from bot.storage.tables import broadcast_recipients, broadcasts, contacts
from bot.workspace.csv_io import csv_line
from broadcasts import store
from broadcasts.definition import RECIPIENT_STATUSES, NewBroadcast
from broadcasts.runner import RUNNER

WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 422)
MOVE_ERRORS = (401, 403, 404, 409)
CSV_PAGE = 1000  # rows read a transaction while the CSV streams
CSV_HEADER = ("contact_id", "contact_name", "status", "reason", "message_id", "sent_at")
STATUS = query_param("status", "only recipients in this status", enum=list(RECIPIENT_STATUSES))
AFTER = query_param("after", "the `next_after` of the page before")
ITEM: dict[str, Any] = {"type": "object", "required": ["id"]}

routes = Routes()


def _summary(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "channel_id": r.channel_id,
        "status": r.status,
        "send_at": iso(r.send_at),
        "created_at": iso(r.created_at),
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
    }


async def _shown(conn: AsyncConnection, r: Any) -> dict[str, Any]:
    """The whole broadcast: what it sends to whom, its state, and its recipients by status."""
    return {
        **_summary(r),
        "view_id": r.view_id,
        "contact_count": len(r.contact_ids) if r.contact_ids is not None else None,
        "message": r.message,
        "settings": r.settings,
        "planned": bool(r.planned),
        "last_error": r.last_error,
        "counts": await store.counts(conn, r.id),
        "skipped": await store.skip_reasons(conn, r.id),
    }


@routes.get(
    "/api/v1/broadcasts",
    "The space's broadcasts, newest first",
    list_of(ITEM, "next_before"),
    query=(LIMIT, BEFORE),
)
async def list_broadcasts(request: web.Request) -> web.Response:
    """Keyset pages: `?before=` the last page's `next_before`."""
    known_query(request, "limit", "before")
    limit = page_limit(request)
    query = (
        sa.select(broadcasts)
        .where(broadcasts.c.space_id == request[PRINCIPAL].space_id)
        .order_by(broadcasts.c.id.desc())
        .limit(limit)
    )
    if (before := int_query(request, "before")) is not None:
        query = query.where(broadcasts.c.id < before)
    async with request.app[DB].read() as conn:
        items = [_summary(r) for r in await conn.execute(query)]
    cursor = items[-1]["id"] if len(items) == limit else None
    return web.json_response({"items": items, "next_before": cursor})


@routes.post(
    "/api/v1/broadcasts",
    "Create a broadcast: a draft, or scheduled when it says `send_at`",
    body=NewBroadcast,
    status=201,
    said="created",
    returns=OBJECT,
    errors=WRITE_ERRORS,
)
async def create_broadcast(request: web.Request) -> web.Response:
    """Checked against the space before it is stored; nothing is sent until it starts."""
    require(request, "manager")
    new = await json_body(request, NewBroadcast)
    principal = request[PRINCIPAL]
    async with request.app[DB].write() as conn:
        broadcast_id = await store.create(conn, principal.space_id, principal.user_id, new)
    async with request.app[DB].read() as conn:  # counting holds no writer
        shown = await _shown(conn, await store.get(conn, principal.space_id, broadcast_id))
    return web.json_response(shown, status=201)


@routes.get(
    "/api/v1/broadcasts/{broadcast_id}", "A broadcast, its state and its recipients' counts"
)
async def show_broadcast(request: web.Request) -> web.Response:
    space_id, broadcast_id = request[PRINCIPAL].space_id, path_id(request, "broadcast_id")
    async with request.app[DB].read() as conn:
        shown = await _shown(conn, await store.get(conn, space_id, broadcast_id))
    return web.json_response(shown)


async def _move(request: web.Request, action: str) -> web.Response:
    """One state change; the runner hears of it at once, not at its next look."""
    require(request, "manager")
    space_id, broadcast_id = request[PRINCIPAL].space_id, path_id(request, "broadcast_id")
    async with request.app[DB].write() as conn:
        await store.move(conn, space_id, broadcast_id, action)
    _wake(request.app)
    async with request.app[DB].read() as conn:  # counting holds no writer
        shown = await _shown(conn, await store.get(conn, space_id, broadcast_id))
    return web.json_response(shown)


def _wake(app: web.Application) -> None:
    """This process's runner hears of the change now, not at its next look."""
    if RUNNER in app:
        app[RUNNER].notify()


def _moves(action: str, summary: str) -> Callable[[Handler], Handler]:
    return routes.post(
        f"/api/v1/broadcasts/{{broadcast_id}}/{action}",
        summary,
        returns=OBJECT,
        errors=MOVE_ERRORS,
    )


@_moves("start", "Start a draft or scheduled broadcast now")
async def start_broadcast(request: web.Request) -> web.Response:
    return await _move(request, "start")


@_moves("pause", "Pause a running broadcast (its sending stops within a second)")
async def pause_broadcast(request: web.Request) -> web.Response:
    return await _move(request, "pause")


@_moves("resume", "Resume a paused broadcast")
async def resume_broadcast(request: web.Request) -> web.Response:
    return await _move(request, "resume")


@_moves("cancel", "Cancel a broadcast: whoever it has not reached yet, it never will")
async def cancel_broadcast(request: web.Request) -> web.Response:
    return await _move(request, "cancel")


def _status(request: web.Request) -> str | None:
    status = request.query.get("status")
    if status is not None and status not in RECIPIENT_STATUSES:
        raise InvalidPayload(f"status: one of {', '.join(RECIPIENT_STATUSES)}")
    return status


def _recipients(broadcast_id: int, status: str | None, after: int | None, limit: int) -> Any:
    """A page of recipients with their contact's name, in id order after `after`."""
    name = (
        sa.select(contacts.c.name)
        .where(contacts.c.id == broadcast_recipients.c.contact_id)
        .scalar_subquery()
        .label("contact_name")
    )
    query = store.recipients_query(broadcast_id, status).add_columns(name).limit(limit)
    if after is not None:
        query = query.where(broadcast_recipients.c.id > after)
    return query


def _recipient(r: Any) -> dict[str, Any]:
    """A recipient; a sent message the platform later refused says why in `reason`."""
    reason = r.reason or (r.error if r.status == "failed" else None)
    return {
        "id": r.id,
        "contact_id": r.contact_id,
        "contact_name": r.contact_name,
        "status": r.status,
        "reason": reason,
        "message_id": r.message_id,
        "sent_at": iso(r.sent_at),
    }


@routes.get(
    "/api/v1/broadcasts/{broadcast_id}/recipients",
    "A broadcast's recipients in order: status, and why one was skipped or failed",
    list_of(ITEM, "next_after"),
    query=(STATUS, LIMIT, AFTER),
)
async def list_recipients(request: web.Request) -> web.Response:
    """Keyset pages by id (`?after=`); none until the runner has planned a started one."""
    known_query(request, "status", "limit", "after")
    space_id, broadcast_id = request[PRINCIPAL].space_id, path_id(request, "broadcast_id")
    status, limit = _status(request), page_limit(request)
    after = int_query(request, "after")
    async with request.app[DB].read() as conn:
        await store.get(conn, space_id, broadcast_id)
        rows = await conn.execute(_recipients(broadcast_id, status, after, limit))
        items = [_recipient(r) for r in rows]
    cursor = items[-1]["id"] if len(items) == limit else None
    return web.json_response({"items": items, "next_after": cursor})


@routes.get(
    "/api/v1/broadcasts/{broadcast_id}/recipients.csv",
    "The recipients as CSV (a header row, then one row each)",
    query=(STATUS,),
    errors=(400, 401, 404),
    **CSV,
)
async def recipients_csv(request: web.Request) -> web.StreamResponse:
    """Written a page at a time, each read in its own short transaction; every cell goes
    through `csv_line`, so a contact named `=cmd|...` is text to a spreadsheet."""
    known_query(request, "status")
    space_id, broadcast_id = request[PRINCIPAL].space_id, path_id(request, "broadcast_id")
    status = _status(request)
    async with request.app[DB].read() as conn:
        await store.get(conn, space_id, broadcast_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="broadcast-{broadcast_id}.csv"',
        }
    )
    await response.prepare(request)
    await response.write(csv_line(CSV_HEADER).encode())
    after = None
    while True:
        async with request.app[DB].read() as conn:
            rows = (await conn.execute(_recipients(broadcast_id, status, after, CSV_PAGE))).all()
        if rows:
            shown = [_recipient(r) for r in rows]
            await response.write(
                "".join(csv_line(r.get(c) for c in CSV_HEADER) for r in shown).encode()
            )
        if len(rows) < CSV_PAGE:
            break
        after = rows[-1].id
    await response.write_eof()
    return response
