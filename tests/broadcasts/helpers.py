"""Shared steps of the broadcast tests: create and start a broadcast as the API does, and
read its recipients."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp.web import Application

from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import broadcast_recipients, broadcasts, views
from broadcasts import store
from broadcasts.definition import NewBroadcast
from broadcasts.runner import RUNNER
from tests.conftest import eventually


async def view(app: Application, group: dict[str, Any], name: str = "everyone") -> int:
    async with app[DB].write() as conn:
        return (
            await conn.execute(
                views.insert()
                .values(space_id=app[DEFAULT_SPACE], name=name, filter=group)
                .returning(views.c.id)
            )
        ).scalar_one()


EVERYONE: dict[str, Any] = {"all": []}


async def create(app: Application, channel_id: str, **given: Any) -> int:
    """A draft broadcast (or scheduled, with `send_at`); `view_id` defaults to everyone."""
    if "view_id" not in given and "contact_ids" not in given:
        given["view_id"] = await view(app, EVERYONE, f"everyone-{channel_id}")
    given.setdefault("name", f"offer-{channel_id}-{len(given)}")
    given.setdefault("message", {"text": "Hi {{contact.first_name | default: 'there'}}"})
    new = NewBroadcast.model_validate({"channel_id": channel_id, **given})
    async with app[DB].write() as conn:
        return await store.create(conn, app[DEFAULT_SPACE], None, new)


async def act(app: Application, broadcast_id: int, action: str) -> None:
    async with app[DB].write() as conn:
        await store.move(conn, app[DEFAULT_SPACE], broadcast_id, action)
    app[RUNNER].notify()


async def status(app: Application, broadcast_id: int) -> str:
    async with app[DB].read() as conn:
        return (
            await conn.execute(
                sa.select(broadcasts.c.status).where(broadcasts.c.id == broadcast_id)
            )
        ).scalar_one()


async def finished(app: Application, broadcast_id: int, timeout: float = 10.0) -> dict[str, int]:
    """Wait for the broadcast to complete; its counts."""
    await eventually(lambda: _is(app, broadcast_id, "completed"), timeout)
    async with app[DB].read() as conn:
        return await store.counts(conn, broadcast_id)


async def _is(app: Application, broadcast_id: int, wanted: str) -> bool:
    return await status(app, broadcast_id) == wanted


async def recipients(app: Application, broadcast_id: int) -> list[Any]:
    async with app[DB].read() as conn:
        return list((await conn.execute(store.recipients_query(broadcast_id, None))).all())


async def reasons(app: Application, broadcast_id: int) -> dict[int, str | None]:
    """Each contact's skip or failure reason (None when it was sent)."""
    async with app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(broadcast_recipients.c.contact_id, broadcast_recipients.c.reason).where(
                broadcast_recipients.c.broadcast_id == broadcast_id
            )
        )
        return dict(rows.all())
