"""Contacts: search, the saved views with their counts, CSV import (in the background, its
progress shown) and export, merge and undo. Views, export, merge and undo are the REST
API's (through `dashboard.bridge`); import is the CLI's (`bot.workspace.csv_io`)."""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web

from bot.api.views import visible
from bot.errors import ChanCenterError, Conflict, InvalidPayload
from bot.keys import DB
from bot.storage.tables import views
from bot.workspace import contacts as contact_ops
from bot.workspace.csv_io import import_csv
from bot.workspace.filters import Group
from dashboard.session import SPACE, VIEWER, number, page

log = logging.getLogger(__name__)
PAGE = 50
LARGEST_CSV = 20_000_000  # bytes
KEEP = 600.0  # seconds a finished import's report waits for its page
IMPORTS = web.AppKey("dashboard_imports", dict)


@dataclass
class Import:
    """One CSV import running in the background: what the page polls."""

    space_id: int
    rows: int
    done: int = 0
    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)
    finished: bool = False
    ended: float = 0.0  # monotonic; a finished job nobody polls is dropped after a while
    task: asyncio.Task[None] | None = None


def setup(app: web.Application) -> None:
    app[IMPORTS] = {}
    app.router.add_get("/app/{space}/contacts", contacts_page)
    app.router.add_get("/app/{space}/contacts/list", contacts_list)
    app.router.add_get("/app/{space}/contacts/views", views_list)
    app.router.add_post("/app/{space}/contacts/import", start_import)
    app.router.add_get("/app/{space}/contacts/import/{job}", import_progress)


async def _views(conn: Any, request: web.Request) -> list[dict[str, Any]]:
    """The views the viewer sees, each with how many contacts it holds now."""
    space_id, viewer = request[SPACE].space_id, request[VIEWER]
    rows = await conn.execute(
        sa.select(views)
        .where(views.c.space_id == space_id, visible(views, viewer.user_id))
        .order_by(views.c.name)
    )
    found = []
    for row in rows:
        group = Group.model_validate(row.filter)
        _, total = await contact_ops.find(conn, space_id, group, None, 1, None, True)
        found.append({"id": row.id, "name": row.name, "shared": row.user_id is None,
                      "filter": row.filter, "count": total})  # fmt: skip
    return found


async def saved_filter(conn: Any, space_id: int, user_id: int, view_id: int | None) -> Group | None:
    """The filter of a view this person sees (shared, or theirs); None for any other."""
    if view_id is None:
        return None
    found = (
        await conn.execute(
            sa.select(views.c.filter).where(
                views.c.id == view_id, views.c.space_id == space_id, visible(views, user_id)
            )
        )
    ).scalar()
    return Group.model_validate(found) if found is not None else None


async def _listing(conn: Any, request: web.Request) -> dict[str, Any]:
    space_id = request[SPACE].space_id
    search = request.query.get("q", "")[:200] or None
    chosen = request.query.get("view", "")
    group = await saved_filter(conn, space_id, request[VIEWER].user_id, number(chosen))
    rows, total = await contact_ops.find(conn, space_id, group, search, PAGE, None, True)
    return {"contacts": rows, "total": total, "q": search or "", "view": chosen}


@page()
@aiohttp_jinja2.template("contacts.html")
async def contacts_page(request: web.Request) -> dict[str, Any]:
    async with request.app[DB].read() as conn:
        listing = await _listing(conn, request)
        saved = await _views(conn, request)
    return {
        "viewer": request[VIEWER],
        "space": request[SPACE],
        "section": "contacts",
        "views": saved,
        **listing,
    }


@page()
@aiohttp_jinja2.template("_contacts.html")
async def contacts_list(request: web.Request) -> dict[str, Any]:
    async with request.app[DB].read() as conn:
        return {"space": request[SPACE], **await _listing(conn, request)}


@page()
@aiohttp_jinja2.template("_views.html")
async def views_list(request: web.Request) -> dict[str, Any]:
    async with request.app[DB].read() as conn:
        return {"space": request[SPACE], "views": await _views(conn, request)}


@page()
async def start_import(request: web.Request) -> web.Response:
    """Read the uploaded CSV, then import it in the background; the answer polls."""
    reader = await request.multipart()
    part = await reader.next()
    if part is None or getattr(part, "name", None) != "file":
        raise InvalidPayload("choose a CSV file")
    raw = bytearray()
    while chunk := await part.read_chunk():  # type: ignore[union-attr]
        raw += chunk
        if len(raw) > LARGEST_CSV:
            raise InvalidPayload("that file is larger than 20 MB: split it")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidPayload("the CSV is not UTF-8: save it as CSV UTF-8") from None
    space_id = request[SPACE].space_id
    jobs = request.app[IMPORTS]
    for old in [k for k, j in jobs.items() if j.finished and time.monotonic() - j.ended > KEEP]:
        del jobs[old]
    if any(j.space_id == space_id and not j.finished for j in jobs.values()):
        raise Conflict("an import is running in this space: wait for it to end")
    job = Import(space_id, rows=max(text.count("\n") - 1, 0))
    key = secrets.token_urlsafe(12)
    jobs[key] = job
    job.task = asyncio.create_task(_run(request.app, job, text))
    return _progress(request, key, job)


async def _run(app: web.Application, job: Import, text: str) -> None:
    def advanced(n: int) -> None:
        job.done += n

    try:
        report = await import_csv(app[DB], job.space_id, io.StringIO(text), advanced)
        job.created, job.updated, job.errors = report.created, report.updated, report.errors
    except ChanCenterError as exc:
        job.errors = [str(exc)]
    except Exception as exc:  # a broken file: the page says where it stopped, not "done"
        log.exception("contact import failed", extra={"space": job.space_id})
        job.errors = [f"the import stopped after about {job.done} rows: {exc}"]
    finally:
        job.done = job.rows if not job.errors else job.done
        job.finished = True
        job.ended = time.monotonic()


@page()
async def import_progress(request: web.Request) -> web.Response:
    key = request.match_info["job"]
    job = request.app[IMPORTS].get(key)
    if job is None or job.space_id != request[SPACE].space_id:
        raise web.HTTPNotFound()
    if job.finished:
        request.app[IMPORTS].pop(key, None)
    return _progress(request, key, job)


def _progress(request: web.Request, key: str, job: Import) -> web.Response:
    context = {"space": request[SPACE], "key": key, "job": job}
    return aiohttp_jinja2.render_template("_import.html", request, context)
