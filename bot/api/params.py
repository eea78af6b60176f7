"""What every `/api/v1` module shares: the body parser, query and path parameters, times,
the stored message's shape, and the space-scoped reads.

Every query is scoped by the token's space: another space's ids answer 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.api.auth import PRINCIPAL
from bot.clock import iso
from bot.delivery.media import with_media_urls
from bot.errors import InvalidPayload, NotFound, PayloadTooLarge
from bot.keys import DB
from bot.pipeline.untrusted import MAX_INT, load_yaml, loads, plain

M = TypeVar("M", bound=BaseModel)
MAX_LIMIT = 200
MAX_ID = MAX_INT  # the databases' BIGINT
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")


def int_query(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_ID:
        raise InvalidPayload(f"query parameter {name!r} must be an integer from 0 to {MAX_ID}")
    return value


def page_limit(request: web.Request) -> int:
    limit = int_query(request, "limit", 50)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise InvalidPayload(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def known_query(request: web.Request, *names: str) -> None:
    """A misspelt query parameter would otherwise be ignored and answer everything."""
    unknown = sorted(set(request.query) - set(names))
    if unknown:
        raise InvalidPayload(
            f"unknown query parameter {unknown[0]!r}; this route takes {', '.join(names)}"
        )


async def json_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as `model`; every way it can be wrong is a 400 naming where."""
    data = loads(await request.read())
    if isinstance(data, dict) and model.model_config.get("extra") != "allow":
        known = {f.alias or name for name, f in model.model_fields.items()}
        unknown = sorted(set(data) - known)
        if unknown:  # a misspelt field would otherwise be ignored without a word
            raise InvalidPayload(f"{unknown[0]}: unknown field; known: {', '.join(sorted(known))}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidPayload(f"{where}: {err['msg']}") from None


async def document_body(request: web.Request, what: str, max_bytes: int) -> Any:
    """A definition people write (a survey, an automation) as plain data: the body as
    JSON, or YAML with a YAML content type; `what` names it in errors ("the survey")."""
    raw = await request.read()
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"{what} is at most {max_bytes} bytes")
    if request.content_type in YAML_TYPES:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPayload(f"{what} is not UTF-8 text") from None
        data = await asyncio.to_thread(load_yaml, text, what)  # bounded, yet not instant
    else:
        try:
            data = loads(raw, what)
        except InvalidPayload as exc:
            raise InvalidPayload(f"{exc}: send JSON, or YAML as application/yaml") from None
    return plain(data)


def path_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise NotFound(f"no {name.removesuffix('_id')} {raw!r}: ids are positive integers")
    return int(raw)


def in_space(table: sa.Table, space_id: int, *columns: Any) -> sa.Select[Any]:
    """This space's rows of `table` (every column, or `columns`), to refine further."""
    return sa.select(*(columns or (table,))).where(table.c.space_id == space_id)


async def space_row(
    conn: AsyncConnection,
    table: sa.Table,
    space_id: int,
    row_id: int,
    what: str,
    *columns: Any,
    where: Any = None,
) -> Any:
    """Row `row_id` of `table` in this space (and `where`), else NotFound: another space's
    rows are not there."""
    query = in_space(table, space_id, *columns).where(table.c.id == row_id)
    row = (await conn.execute(query if where is None else query.where(where))).first()
    if row is None:
        raise NotFound(f"no {what} {row_id} in this space")
    return row


async def space_items(
    request: web.Request,
    table: sa.Table,
    shape: Callable[[Any], dict[str, Any]],
    *,
    where: Any = None,
    order_by: Any = None,
) -> web.Response:
    """`{"items": [...]}`: the caller's space's rows of `table` (and `where`), each shaped."""
    query = in_space(table, request[PRINCIPAL].space_id)
    if where is not None:
        query = query.where(where)
    if order_by is not None:
        query = query.order_by(order_by)
    async with request.app[DB].read() as conn:
        items = [shape(r) for r in await conn.execute(query)]
    return web.json_response({"items": items})


def message_json(r: Any, key: bytes | None = None) -> dict[str, Any]:
    """A stored message; with `key`, platform media get a signed `/media/` URL."""
    return {
        "id": r.id,
        "direction": r.direction,
        "sender": sender_json(r.sender_type, r.sender_id),
        "parts": with_media_urls(key, r.channel_id, r.parts) if key else r.parts,
        "status": r.status,
        "error": r.error,
        "reply_to_id": r.reply_to_id,
        "created_at": iso(r.created_at),
    }


def sender_json(kind: str, sender_id: str | None) -> dict[str, Any]:
    """`{"type", "id"}`: ids of people, automations and broadcasts are numbers."""
    numeric = kind in ("user", "automation", "broadcast") and sender_id and sender_id.isdigit()
    return {"type": kind, "id": int(sender_id) if numeric else sender_id}
