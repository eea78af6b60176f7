"""A channel's health, read from what the hot paths already write: when its newest
inbound message arrived (through its webhook) and its newest failed send, with the
platform's reason. Nothing is written for it, so the webhook path pays nothing.

Each figure is one `... ORDER BY id DESC LIMIT 1` on `messages` by channel and status
(inbound rows are always `received`, failed sends always `failed`): an index on
`messages (channel_id, status, id)` makes each a single probe; without it, the
database reads the channel's rows through `uq_messages_channel_external`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import db_datetime, iso
from bot.storage.tables import messages


@dataclass(frozen=True)
class SendError:
    """The newest outbound message of the channel that failed for good."""

    message_id: int
    error: str | None
    at: datetime | None  # when the message was written


@dataclass(frozen=True)
class Health:
    last_received_at: datetime | None = None  # None: no message came in yet
    last_send_error: SendError | None = None

    def as_json(self) -> dict[str, Any]:
        failed = self.last_send_error
        return {
            "last_received_at": iso(self.last_received_at),
            "last_send_error": None
            if failed is None
            else {"message_id": failed.message_id, "error": failed.error, "at": iso(failed.at)},
        }


def _newest(status: str, column: Any) -> Any:
    """The newest message of the outer channel in `status`: its `column`."""
    return (
        sa.select(column)
        .where(messages.c.channel_id == sa.bindparam("channel_id"))
        .where(messages.c.status == status)
        .order_by(messages.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


# Built once: one statement a channel, two index probes (see the module's docstring)
_HEALTH = sa.select(
    _newest("received", messages.c.created_at).label("received_at"),
    _newest("failed", messages.c.id).label("failed_id"),
)


async def health(conn: AsyncConnection, channel_ids: Sequence[str]) -> dict[str, Health]:
    """Each channel's health (the caller scopes `channel_ids` to its space)."""
    newest: dict[str, tuple[datetime | None, int | None]] = {}
    for channel_id in channel_ids:
        row = (await conn.execute(_HEALTH, {"channel_id": channel_id})).one()
        newest[channel_id] = (db_datetime(row.received_at), row.failed_id)
    failed_ids = [failed for _, failed in newest.values() if failed is not None]
    failures: dict[int, SendError] = {}
    if failed_ids:
        rows = await conn.execute(
            sa.select(messages.c.id, messages.c.error, messages.c.created_at).where(
                messages.c.id.in_(failed_ids)
            )
        )
        failures = {r.id: SendError(r.id, r.error, db_datetime(r.created_at)) for r in rows}
    return {
        channel_id: Health(received, failures.get(failed) if failed is not None else None)
        for channel_id, (received, failed) in newest.items()
    }
