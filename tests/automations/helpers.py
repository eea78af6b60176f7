"""Shared steps of the automation tests: save an automation as the API does, read runs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp.web import Application

from automations.clock import AutomationClock
from automations.definition import parse_automation
from automations.references import check
from automations.store import save_new
from bot.keys import DB, DEFAULT_SPACE, QUEUE
from bot.storage.tables import automation_runs


async def add(app: Application, text: str, space_id: int | None = None) -> int:
    """Validate and store an automation, as `POST /api/v1/automations` does."""
    automation = parse_automation(text)
    space_id = space_id or app[DEFAULT_SPACE]
    async with app[DB].write() as conn:
        await check(conn, space_id, automation)
        return await save_new(conn, space_id, automation)


async def runs(app: Application, automation_id: int | None = None) -> list[Any]:
    query = sa.select(automation_runs).order_by(automation_runs.c.id)
    if automation_id is not None:
        query = query.where(automation_runs.c.automation_id == automation_id)
    async with app[DB].read() as conn:
        return list((await conn.execute(query)).all())


def clock(app: Application) -> AutomationClock:
    """A clock over the app's database and queue: the production rounds, run by hand."""
    return AutomationClock(app[DB], app[QUEUE].announce)
