"""`/api/v1/surveys`: write surveys in YAML or JSON, send them, read the results.

A survey body is untrusted: JSON goes through `bot.pipeline.untrusted.loads`, YAML through its
bounded `load_yaml` (off the event loop); then both must be `plain` JSON-like data before
the survey model sees them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.api.auth import PRINCIPAL
from bot.api.openapi import BEFORE, CSV, LIMIT, Routes
from bot.api.params import document_body, int_query, json_body, page_limit, path_id, space_items
from bot.api.roles import require
from bot.api.views import view_filter
from bot.clock import iso
from bot.errors import InvalidPayload
from bot.keys import DB
from bot.pipeline.untrusted import MAX_INT
from bot.storage.tables import contacts, flow_runs, surveys
from bot.workspace import contacts as contact_ops
from bot.workspace.csv_io import csv_line
from bot.workspace.filters import compile_filter
from bot.workspace.triggers import changed
from surveys.definition import Survey, dump, parse_survey
from surveys.engine import find_survey
from surveys.fields import check_fields
from surveys.start import start_for_contact

STATUSES = ("sent", "in_progress", "completed", "expired", "stopped")
MAX_SURVEY_BYTES = 512_000  # 200 steps in a few languages fit many times over
Id = Annotated[int, Field(ge=1, le=MAX_INT)]


class Send(BaseModel):
    """Start the survey for these contacts, or for every contact a saved view selects."""

    model_config = ConfigDict(extra="forbid", strict=True)

    contact_ids: list[Id] | None = Field(None, max_length=10_000)
    view_id: Id | None = None


routes = Routes()


@routes.get("/api/v1/surveys", "The space's surveys")
async def list_surveys(request: web.Request) -> web.Response:
    return await space_items(
        request,
        surveys,
        lambda r: {
            "id": r.id,
            "name": r.name,
            "description": r.definition.get("description", ""),
            "steps": len(r.definition["steps"]),
            "created_at": iso(r.created_at),
        },
        order_by=surveys.c.id,
    )


@routes.post(
    "/api/v1/surveys",
    "Save a survey, written in JSON or YAML (application/yaml)",
    body=Survey,
    status=201,
    said="saved",
    errors=(400, 401, 403),
    also={"application/yaml": {"type": "string"}},
)
async def create_survey(request: web.Request) -> web.Response:
    """The body is the survey: JSON, or YAML with a YAML content type."""
    require(request, "manager")
    data = await document_body(request, "the survey", MAX_SURVEY_BYTES)
    if not isinstance(data, dict):
        raise InvalidPayload("a survey is a mapping with name and steps")
    survey = parse_survey(data)
    space_id = request[PRINCIPAL].space_id
    async with request.app[DB].write() as conn:
        await check_fields(conn, space_id, survey)
        taken = (
            await conn.execute(
                sa.select(surveys.c.id).where(
                    surveys.c.space_id == space_id, surveys.c.name == survey.name
                )
            )
        ).first()
        if taken is not None:
            raise InvalidPayload(f"a survey named {survey.name!r} exists; remove it first")
        survey_id = (
            await conn.execute(
                surveys.insert()
                .values(space_id=space_id, name=survey.name, definition=dump(survey))
                .returning(surveys.c.id)
            )
        ).scalar_one()
    return web.json_response({"id": survey_id, "name": survey.name}, status=201)


@routes.get("/api/v1/surveys/{survey_id}", "One survey's definition")
async def show_survey(request: web.Request) -> web.Response:
    async with request.app[DB].read() as conn:
        survey_id, survey = await find_survey(
            conn, request[PRINCIPAL].space_id, path_id(request, "survey_id")
        )
    return web.json_response({"id": survey_id, "name": survey.name, "definition": dump(survey)})


@routes.delete("/api/v1/surveys/{survey_id}", "Remove a survey and its results")
async def remove_survey(request: web.Request) -> web.Response:
    """Removes the survey and its results; runs in progress stop."""
    require(request, "manager")
    async with request.app[DB].write() as conn:
        survey_id, _ = await find_survey(
            conn, request[PRINCIPAL].space_id, path_id(request, "survey_id")
        )
        await conn.execute(surveys.delete().where(surveys.c.id == survey_id))
        await changed(conn, request[PRINCIPAL].space_id)  # automations may name it
    return web.Response(status=204)


@routes.post(
    "/api/v1/surveys/{survey_id}/send",
    "Start the survey for contacts or a view (who was skipped, and why)",
    body=Send,
)
async def send_survey(request: web.Request) -> web.Response:
    """Contacts outside their channel's messaging window, or talking with a person, are
    skipped and listed; the sender paces the messages by each platform's limits."""
    require(request, "manager")
    body = await json_body(request, Send)
    if (body.contact_ids is None) == (body.view_id is None):
        raise InvalidPayload("give contact_ids or view_id (one of them)")
    principal = request[PRINCIPAL]
    async with request.app[DB].read() as conn:
        survey_id, survey = await find_survey(
            conn, principal.space_id, path_id(request, "survey_id")
        )
        query = sa.select(contacts.c.id).where(contacts.c.space_id == principal.space_id)
        if body.view_id is not None:
            group = await view_filter(conn, principal, body.view_id)
            fields = await contact_ops.field_defs(conn, principal.space_id)
            query = query.where(compile_filter(group, principal.space_id, fields, for_page=False))
        else:
            query = query.where(contacts.c.id.in_(body.contact_ids or []))
        ids = list((await conn.execute(query.order_by(contacts.c.id))).scalars())
    skipped = []
    for contact_id in ids:
        reason = await start_for_contact(
            request.app, principal.space_id, survey_id, survey, contact_id
        )
        if reason:
            skipped.append({"contact_id": contact_id, "reason": reason})
    return web.json_response({"started": len(ids) - len(skipped), "skipped": skipped})


async def _runs(request: web.Request) -> tuple[int, Any]:
    async with request.app[DB].read() as conn:
        survey_id, _ = await find_survey(
            conn, request[PRINCIPAL].space_id, path_id(request, "survey_id")
        )
    return survey_id, (
        sa.select(flow_runs, contacts.c.name)
        .join(contacts, contacts.c.id == flow_runs.c.contact_id)
        .where(flow_runs.c.survey_id == survey_id)
        .order_by(flow_runs.c.id.desc())
    )


def _run_json(r: Any, saved_to: dict[str, str]) -> dict[str, Any]:
    """A run's answers by step id, and again by the custom field each was saved to."""
    answers = r.answers or {}
    return {
        "id": r.id,
        "contact_id": r.contact_id,
        "contact_name": r.name,
        "conversation_id": r.conversation_id,  # a satisfaction survey's: the one it rates
        "status": r.status,
        "answers": answers,
        "fields": {field: answers[step] for step, field in saved_to.items() if step in answers},
        "started_at": iso(r.created_at),
        "finished_at": iso(r.finished_at),
    }


@routes.get(
    "/api/v1/surveys/{survey_id}/results",
    "Answers and status per contact, with completion figures",
    query=(LIMIT, BEFORE),
)
async def results(request: web.Request) -> web.Response:
    """Each contact's answers and status, newest first, with the survey's figures."""
    survey_id, query = await _runs(request)
    if (before := int_query(request, "before")) is not None:
        query = query.where(flow_runs.c.id < before)
    async with request.app[DB].read() as conn:
        _, survey = await find_survey(conn, request[PRINCIPAL].space_id, survey_id)
        rows = (await conn.execute(query.limit(page_limit(request)))).all()
        counted = dict(
            (
                await conn.execute(
                    sa.select(flow_runs.c.status, sa.func.count())
                    .where(flow_runs.c.survey_id == survey_id)
                    .group_by(flow_runs.c.status)
                )
            ).all()
        )
    counts = {status: counted.get(status, 0) for status in STATUSES}
    total = sum(counts.values())
    saved_to = {s.id: s.save_to for s in survey.steps if getattr(s, "save_to", None)}
    items = [_run_json(r, saved_to) for r in rows]
    return web.json_response(
        {
            "counts": counts,
            "completion_rate": round(counts["completed"] / total, 3) if total else None,
            "items": items,
            "next_before": items[-1]["id"] if items else None,
        }
    )


@routes.get(
    "/api/v1/surveys/{survey_id}/results.csv",
    "The results as CSV, a column per question",
    errors=(401, 403, 404),
    **CSV,
)
async def results_csv(request: web.Request) -> web.StreamResponse:
    """One row per run: contact, status, times, then one column per question."""
    survey_id, query = await _runs(request)
    async with request.app[DB].read() as conn:
        _, survey = await find_survey(conn, request[PRINCIPAL].space_id, survey_id)
    questions = [s.id for s in survey.steps if s.type == "question"]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": _attachment(f"{survey.name}-results.csv"),
        }
    )
    await response.prepare(request)
    await response.write(
        _row(["contact_id", "contact_name", "status", "started_at", "finished_at", *questions])
    )
    async with request.app[DB].read() as conn:
        result = await conn.stream(query)
        async for r in result:
            answers = r.answers or {}
            values = [contact_ops.shown(answers.get(q)) for q in questions]
            await response.write(
                _row(
                    [
                        r.contact_id,
                        r.name or "",
                        r.status,
                        iso(r.created_at) or "",
                        iso(r.finished_at) or "",
                        *values,
                    ]
                )
            )
    await response.write_eof()
    return response


def _row(values: list[Any]) -> bytes:
    return csv_line(values).encode()


def _attachment(filename: str) -> str:
    """A download name from a survey's name: ASCII-safe, plus the exact one (RFC 6266);
    a quote or a line break in the name can't break out of the header."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
