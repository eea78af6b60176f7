"""Claiming recipients: the step that makes each send happen at most once.

One transaction takes a batch of queued recipients, writes each one's message into the
contact's latest conversation (a closed one stays closed; a contact who never had one
here gets a closed one to hold it), and marks them `sending` by this runner. Whatever
happens after the commit, a row in `sending` is never claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.delivery.sender import UNREACHABLE
from bot.model import Outbound, Part, Reach, TemplatePart, parts_adapter
from bot.pipeline.partitions import Owned, only_owned
from bot.storage.db import Database
from bot.storage.tables import (
    broadcast_recipients,
    broadcasts,
    contacts,
    conversations,
    identities,
    messages,
)
from bot.workspace.contacts import fields_of_many
from bot.workspace.shortcuts import contact_values
from broadcasts.content import parts_for, uses_fields
from broadcasts.definition import BroadcastMessage
from broadcasts.planning import UNSUBSCRIBED, last_inbound

NOTHING = "the message renders to nothing for this contact"
GONE = "its identity on this channel was removed"
_r = broadcast_recipients.c
# built once: a claim runs them every few hundredths of a second
_SKIPPED = (
    broadcast_recipients.update()
    .where(_r.id == sa.bindparam("r_id"))
    .values(status="skipped", reason=sa.bindparam("r_reason"))
)
_SENDING = (
    broadcast_recipients.update()
    .where(_r.id == sa.bindparam("r_id"))
    .values(
        status="sending",
        claimed_by=sa.bindparam("r_runner"),
        message_id=sa.bindparam("r_message"),
    )
)


@dataclass(frozen=True)
class Claim:
    recipient_id: int
    identity_id: int
    message_id: int
    attempts: int  # refusals so far
    outbound: Outbound


async def take(
    db: Database, b: Any, limit: int, windowed: bool, owned: Owned, runner: str
) -> tuple[int, list[Claim]]:
    """Take up to `limit` due queued recipients of broadcast `b` in partitions `owned`: how
    many were taken (some may be skipped now), and the claims to send."""
    at = now()
    message = BroadcastMessage.model_validate(b.message)
    query = (
        sa.select(
            _r.id,
            _r.contact_id,
            _r.identity_id,
            _r.message_id,
            _r.attempts,
            identities.c.external_id,
            identities.c.address,
            identities.c.blocked,
            contacts.c.name,
            contacts.c.phone,
            contacts.c.email,
            contacts.c.language,
            contacts.c.unsubscribed_at,
        )
        .outerjoin(identities, identities.c.id == _r.identity_id)
        .join(contacts, contacts.c.id == _r.contact_id)
        .where(_r.broadcast_id == b.id, _r.status == "queued")
        .where(sa.or_(_r.next_attempt_at.is_(None), _r.next_attempt_at <= at))
        .where(only_owned(_r.id, owned))
        .order_by(_r.id)
        .limit(limit)
    )
    if not db.is_sqlite:  # another worker's claim holds its rows: take others
        query = query.with_for_update(skip_locked=True, of=broadcast_recipients)
    # still running, read in this transaction: once a pause or cancel returns, nothing more
    # is claimed (on PostgreSQL the share lock makes the pause wait for this claim)
    running = sa.select(broadcasts.c.status).where(broadcasts.c.id == b.id)
    if not db.is_sqlite:
        running = running.with_for_update(read=True)
    async with db.write(yielding=True) as conn:  # conversations' writes go first
        if (await conn.execute(running)).scalar() != "running":
            return 0, []
        rows = (await conn.execute(query)).all()
        if not rows:
            return 0, []
        fields: dict[int, dict[str, Any]] = {row.contact_id: {} for row in rows}
        if uses_fields(message):
            for contact_id, key, value in await fields_of_many(conn, list(fields)):
                fields[contact_id][key] = value
        skipped: list[dict[str, Any]] = []
        ready: list[tuple[Any, list[Part]]] = []
        for row in rows:
            parts = parts_for(message, contact_values(row, fields[row.contact_id]))
            if why := _unsendable(row, parts):
                skipped.append({"r_id": row.id, "r_reason": why})
            else:
                ready.append((row, parts))
        if skipped:
            await conn.execute(_SKIPPED, skipped)
        if not ready:
            return len(rows), []
        claims = await _write_messages(conn, b, ready, windowed, at)
        await conn.execute(
            _SENDING,
            [
                {"r_id": c.recipient_id, "r_message": c.message_id, "r_runner": runner}
                for c in claims
            ],
        )
        return len(rows), claims


def _unsendable(row: Any, parts: list[Part]) -> str | None:
    """Why this recipient cannot be sent to now (the contact changed since planning)."""
    if row.external_id is None:
        return GONE
    if row.blocked:
        return UNREACHABLE[Reach(row.blocked)]
    if row.unsubscribed_at is not None:  # a STOP since the planning
        return UNSUBSCRIBED
    for part in parts:
        if isinstance(part, TemplatePart) and "" in (params := [p.strip() for p in part.params]):
            return (
                f"template parameter {{{{{params.index('') + 1}}}}} is empty for this contact "
                '(give its variable a default: {{contact.first_name | default: "there"}})'
            )
    return None if parts else NOTHING


async def _write_messages(
    conn: AsyncConnection,
    b: Any,
    ready: list[tuple[Any, list[Part]]],
    windowed: bool,
    at: datetime,
) -> list[Claim]:
    """Each recipient's message, in history; a retried recipient keeps its message."""
    identity_ids = sorted({row.identity_id for row, _ in ready})
    latest = dict(
        (
            await conn.execute(
                sa.select(conversations.c.identity_id, sa.func.max(conversations.c.id))
                .where(conversations.c.identity_id.in_(identity_ids))
                .group_by(conversations.c.identity_id)
            )
        ).all()
    )
    if none := {
        row.identity_id: row.contact_id for row, _ in ready if row.identity_id not in latest
    }:
        latest.update(await _closed_conversations(conn, b, none, at))
    fresh = [(row, parts) for row, parts in ready if row.message_id is None]
    written: dict[str, int] = {}
    if fresh:
        result = await conn.execute(
            messages.insert().returning(messages.c.id, messages.c.dedupe_key),
            [
                {
                    "space_id": b.space_id,
                    "conversation_id": latest[row.identity_id],
                    "channel_id": b.channel_id,
                    "direction": "out",
                    "parts": parts_adapter.dump_python(parts, mode="json"),
                    "status": "pending",
                    "sender_type": "broadcast",
                    "sender_id": str(b.id),
                    "dedupe_key": f"broadcast:{row.id}",
                    "created_at": at,
                }
                for row, parts in fresh
            ],
        )
        written = {key: message_id for message_id, key in result}
    wrote = await last_inbound(conn, identity_ids) if windowed else {}
    claims = []
    for row, parts in ready:
        message_id = row.message_id or written[f"broadcast:{row.id}"]
        outbound = Outbound(
            message_id=message_id,
            conversation_id=latest[row.identity_id],
            recipient=row.external_id,
            address=row.address,
            parts=tuple(parts),
            last_inbound_at=wrote.get(row.identity_id),
            tag=(b.message or {}).get("tag"),
        )
        claims.append(Claim(row.id, row.identity_id, message_id, row.attempts, outbound))
    return claims


async def _closed_conversations(
    conn: AsyncConnection, b: Any, contact_of: dict[int, int], at: datetime
) -> dict[int, int]:
    """Closed conversations to hold the messages of contacts who never had one here:
    `identity id -> conversation id`."""
    made = await conn.execute(
        conversations.insert().returning(conversations.c.identity_id, conversations.c.id),
        [
            {
                "space_id": b.space_id,
                "contact_id": contact_id,
                "channel_id": b.channel_id,
                "identity_id": identity_id,
                "status": "closed",
                "closed_at": at,
                "created_at": at,
            }
            for identity_id, contact_id in contact_of.items()
        ],
    )
    return dict(made.all())
