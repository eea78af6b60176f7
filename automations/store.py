"""Saving a new automation: its row, its first `schedule`/`date_field` round, and the
version the workers watch (the API, the tests and the bench all save this way)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from automations.clock import arm
from automations.definition import Automation, dump
from bot.storage.tables import automations
from bot.workspace.triggers import changed


async def save_new(conn: AsyncConnection, space_id: int, automation: Automation) -> int:
    """Store a checked automation (references and name already verified); its id."""
    automation_id = (
        await conn.execute(
            automations.insert()
            .values(
                space_id=space_id,
                name=automation.name,
                trigger=automation.trigger.on,
                definition=dump(automation),
                enabled=int(automation.enabled),
            )
            .returning(automations.c.id)
        )
    ).scalar_one()
    if automation.enabled:
        await arm(conn, space_id, automation_id, automation)
    await changed(conn, space_id)
    return int(automation_id)
