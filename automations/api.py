"""`/api/v1/automations`: write automations in YAML or JSON, switch them, read their runs.

A definition that does not parse, or names what the space lacks (a team, a field, a
survey...), is a 422 problem document naming the path (`actions[1].assign.team: no team
'Sales' in this space`) and nothing is stored. Every write bumps the space's
automations version, so the workers compile the space's automations again.

`enabled` lives in the `automations` row; the stored definition's own `enabled` is kept
the same, and what the API shows comes from the row.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from automations.clock import arm
from automations.definition import Automation, dump, parse_automation
from automations.references import check, problem
from automations.store import save_new
from bot.api.auth import PRINCIPAL
from bot.api.openapi import BEFORE, LIMIT, Handler, Routes
from bot.api.params import document_body, int_query, json_body, page_limit, path_id, space_row
from bot.api.roles import require
from bot.clock import iso, now
from bot.errors import InvalidPayload, error_response
from bot.keys import DB
from bot.storage.tables import automation_runs, automation_timers, automations, messages
from bot.workspace.triggers import changed

log = logging.getLogger(__name__)

MAX_AUTOMATION_BYTES = 256_000  # 50 actions with long texts fit many times over
WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 422)
ROUNDS = ("schedule", "date_field")  # timers `arm` sets again from the definition

routes = Routes()


class Refused(InvalidPayload):
    """A request understood but refused: 422 (a definition that is wrong, or names what
    the space lacks) or 409 (the name is taken). Answered by `_answers`."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _answers(handler: Handler) -> Handler:
    """`Refused` as its own status (the shared table knows InvalidPayload as 400); raised
    out of the transaction, so nothing it began is kept."""

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as exc:
            log.info("request refused", extra={"path": request.path, "status": exc.status})
            return error_response(exc.status, str(exc))

    return answer


class Change(BaseModel):
    """Switch an automation on or off, or replace its definition (or both)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool | None = None
    definition: dict[str, Any] | None = Field(
        None, description="the whole automation, as POST takes it (JSON)"
    )


def _definition(data: Any) -> Automation:
    if not isinstance(data, dict):
        raise Refused(422, "an automation is a mapping with name, trigger and actions")
    try:
        return parse_automation(data)
    except InvalidPayload as exc:
        raise Refused(422, str(exc)) from None


async def _references(conn: AsyncConnection, space_id: int, automation: Automation) -> None:
    try:
        await check(conn, space_id, automation)
    except InvalidPayload as exc:
        raise Refused(422, str(exc)) from None


async def _name_free(
    conn: AsyncConnection, space_id: int, name: str, but: int | None = None
) -> None:
    query = sa.select(automations.c.id).where(
        automations.c.space_id == space_id, automations.c.name == name
    )
    if but is not None:
        query = query.where(automations.c.id != but)
    if (await conn.execute(query)).first() is not None:
        raise Refused(409, f"an automation named {name!r} exists; rename this one or remove it")


async def _row(conn: AsyncConnection, space_id: int, automation_id: int) -> Any:
    return await space_row(conn, automations, space_id, automation_id, "automation")


async def _switch_off(conn: AsyncConnection, row: Any, reason: str | None, **values: Any) -> None:
    """Disabled (with `values`, a new definition's): no timer of it fires, and runs
    waiting in it end as `disabled`."""
    definition = values.pop("definition", row.definition)
    await conn.execute(
        automations.update()
        .where(automations.c.id == row.id)
        .values(
            enabled=0,
            disabled_reason=reason,
            definition={**definition, "enabled": False},
            updated_at=now(),
            **values,
        )
    )
    await conn.execute(
        automation_timers.delete().where(automation_timers.c.automation_id == row.id)
    )
    await conn.execute(
        automation_runs.update()
        .where(automation_runs.c.automation_id == row.id, automation_runs.c.status == "waiting")
        .values(status="disabled", updated_at=now())
    )
    await changed(conn, row.space_id)


async def _switch_on(conn: AsyncConnection, row: Any, automation: Automation) -> None:
    """Enabled with `automation` (the stored one, or a new definition); the next round of a
    `schedule` or `date_field` is armed, `no_reply` deadlines of an old trigger dropped."""
    definition = dump(automation)
    kinds = [*ROUNDS]
    if definition["trigger"] != row.definition["trigger"]:
        kinds.append("no_reply")
    timers = automation_timers.c
    await conn.execute(
        automation_timers.delete().where(timers.automation_id == row.id, timers.kind.in_(kinds))
    )
    await conn.execute(
        automations.update()
        .where(automations.c.id == row.id)
        .values(
            name=automation.name,
            trigger=automation.trigger.on,
            definition={**definition, "enabled": True},
            enabled=1,
            disabled_reason=None,
            updated_at=now(),
        )
    )
    await arm(conn, row.space_id, row.id, automation)
    await changed(conn, row.space_id)


def _summary(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "trigger": r.trigger,
        "enabled": bool(r.enabled),
        "disabled_reason": r.disabled_reason,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def _shown(r: Any) -> dict[str, Any]:
    return {**_summary(r), "definition": {**r.definition, "enabled": bool(r.enabled)}}


@routes.get("/api/v1/automations", "The space's automations (and how many runs each has had)")
async def list_automations(request: web.Request) -> web.Response:
    space_id = request[PRINCIPAL].space_id
    runs = (
        sa.select(automation_runs.c.automation_id, sa.func.count().label("runs"))
        .where(automation_runs.c.space_id == space_id)
        .group_by(automation_runs.c.automation_id)
        .subquery()
    )
    query = (
        sa.select(automations, sa.func.coalesce(runs.c.runs, 0).label("runs"))
        .outerjoin(runs, runs.c.automation_id == automations.c.id)
        .where(automations.c.space_id == space_id)
        .order_by(automations.c.id)
    )
    async with request.app[DB].read() as conn:
        items = [{**_summary(r), "runs": r.runs} for r in await conn.execute(query)]
    return web.json_response({"items": items})


@routes.post(
    "/api/v1/automations",
    "Save an automation, written in JSON or YAML (application/yaml)",
    body=Automation,
    status=201,
    said="saved",
    errors=WRITE_ERRORS,
    also={"application/yaml": {"type": "string"}},
)
@_answers
async def create_automation(request: web.Request) -> web.Response:
    """The body is the automation; a wrong one is a 422 naming the path, nothing stored."""
    require(request, "manager")
    data = await document_body(request, "the automation", MAX_AUTOMATION_BYTES)
    automation = _definition(data)
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].write() as conn:
        await _references(conn, space_id, automation)
        await _name_free(conn, space_id, automation.name)
        automation_id = await save_new(conn, space_id, automation)
    return web.json_response({"id": automation_id, "name": automation.name}, status=201)


@routes.get("/api/v1/automations/{automation_id}", "One automation: its definition and state")
async def show_automation(request: web.Request) -> web.Response:
    """An enabled automation that names what is gone is disabled here, with the reason."""
    space_id, automation_id = request[PRINCIPAL].space_id, path_id(request, "automation_id")
    async with request.app[DB].read() as conn:
        row = await _row(conn, space_id, automation_id)
        broken = None
        if row.enabled:
            broken = await problem(conn, space_id, Automation.model_validate(row.definition))
    if broken is not None:
        async with request.app[DB].write() as conn:
            row = await _row(conn, space_id, automation_id)
            if row.enabled:
                await _switch_off(conn, row, broken)
            row = await _row(conn, space_id, automation_id)
    return web.json_response(_shown(row))


@routes.patch(
    "/api/v1/automations/{automation_id}",
    "Enable or disable an automation, or replace its definition",
    body=Change,
    errors=WRITE_ERRORS,
)
@_answers
async def change_automation(request: web.Request) -> web.Response:
    """`enabled` wins over the definition's own; without either, the state is kept. What
    is enabled must name only what exists (else 422, with the reason)."""
    require(request, "manager")
    body = await json_body(request, Change)
    space_id, automation_id = request[PRINCIPAL].space_id, path_id(request, "automation_id")
    new = _definition(body.definition) if body.definition is not None else None
    async with request.app[DB].write() as conn:
        row = await _row(conn, space_id, automation_id)
        automation = new or Automation.model_validate(row.definition)
        enabled = bool(row.enabled)
        if body.enabled is not None:
            enabled = body.enabled
        elif body.definition is not None and "enabled" in body.definition:
            enabled = automation.enabled
        if new is not None or enabled:
            await _references(conn, space_id, automation)
        if new is not None:
            await _name_free(conn, space_id, new.name, but=automation_id)
        if enabled:
            await _switch_on(conn, row, automation)
        elif new is not None:  # checked just now: an old reason no longer holds
            definition = dump(new)
            await _switch_off(
                conn, row, None, name=new.name, trigger=new.trigger.on, definition=definition
            )
        elif row.enabled:
            await _switch_off(conn, row, None)
        row = await _row(conn, space_id, automation_id)
    return web.json_response(_shown(row))


@routes.delete("/api/v1/automations/{automation_id}", "Remove an automation and its runs")
async def remove_automation(request: web.Request) -> web.Response:
    """Its runs and pending timers go with it."""
    require(request, "manager")
    space_id, automation_id = request[PRINCIPAL].space_id, path_id(request, "automation_id")
    async with request.app[DB].write() as conn:
        await _row(conn, space_id, automation_id)
        timers = automation_timers.c
        await conn.execute(automation_timers.delete().where(timers.automation_id == automation_id))
        runs = automation_runs.c
        await conn.execute(automation_runs.delete().where(runs.automation_id == automation_id))
        await conn.execute(automations.delete().where(automations.c.id == automation_id))
        await changed(conn, space_id)
    return web.Response(status=204)


@routes.get(
    "/api/v1/automations/{automation_id}/runs",
    "An automation's runs, newest first: who, what triggered it, each action's outcome",
    query=(LIMIT, BEFORE),
)
async def list_runs(request: web.Request) -> web.Response:
    """A step that sent a message says what became of it (`message_status`, and
    `message_error` when the platform refused it)."""
    space_id, automation_id = request[PRINCIPAL].space_id, path_id(request, "automation_id")
    limit = page_limit(request)
    query = (
        sa.select(automation_runs)
        .where(automation_runs.c.automation_id == automation_id)
        .order_by(automation_runs.c.id.desc())
        .limit(limit)
    )
    if (before := int_query(request, "before")) is not None:
        query = query.where(automation_runs.c.id < before)
    async with request.app[DB].read() as conn:
        await _row(conn, space_id, automation_id)
        rows = (await conn.execute(query)).all()
        sent = await _sent(conn, space_id, rows)
    items = [_run_json(r, sent) for r in rows]
    return web.json_response(
        {"items": items, "next_before": items[-1]["id"] if len(items) == limit else None}
    )


async def _sent(conn: AsyncConnection, space_id: int, runs: list[Any]) -> dict[str, Any]:
    """The messages the runs' steps queued, by dedupe key."""
    keys = {
        step["message"]
        for r in runs
        for step in r.steps or ()
        if isinstance(step, dict) and isinstance(step.get("message"), str)
    }
    if not keys:
        return {}
    query = sa.select(
        messages.c.id, messages.c.dedupe_key, messages.c.status, messages.c.error
    ).where(messages.c.space_id == space_id, messages.c.dedupe_key.in_(keys))
    return {m.dedupe_key: m for m in await conn.execute(query)}


def _run_json(r: Any, sent: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r.id,
        "trigger": r.trigger,
        "contact_id": r.contact_id,
        "conversation_id": r.conversation_id,
        "status": r.status,
        "steps": [_step_json(step, sent) for step in r.steps or ()],
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def _step_json(step: Any, sent: dict[str, Any]) -> Any:
    """A step; one that queued a message, with the message's id and fate."""
    if not isinstance(step, dict) or not isinstance(step.get("message"), str):
        return step
    message = sent.get(step["message"])
    if message is None:  # not written yet, or its conversation was removed
        return {**step, "message_id": None, "message_status": None}
    shown = {**step, "message_id": message.id, "message_status": message.status}
    if message.status == "failed":
        shown["message_error"] = message.error
    return shown
