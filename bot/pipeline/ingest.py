"""The hot path: store what platforms sent, and queue it for the handlers, in one commit.

Group commit: requests that arrive while a commit is running wait for it, then
the next one commits all of them together, so the statements per commit stay
constant (identities, messages, work items: one statement each) however many
messages it carries. A redelivered message hits the unique
`(channel_id, external_id)` and is counted as a duplicate. Nothing else happens
before the acknowledgement: `last_message_at` and the like are the worker's job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import iso, now
from bot.model import (
    Event,
    Inbound,
    Sender,
    inbound_parts,
    parts_adapter,
)
from bot.pipeline.handling import ConversationState
from bot.pipeline.receipts import apply
from bot.pipeline.worker import Ready, WorkItem, state_of, with_state
from bot.storage.db import Database
from bot.storage.group import GroupCommitter
from bot.storage.tables import (
    contacts,
    conversations,
    identities,
    messages,
    webhook_events,
    work_items,
)
from bot.workspace.events import Topics, event_row

log = logging.getLogger(__name__)

# Built once (building a statement and its cache key cost more than running it):
# the open conversations of `senders`; for a worker in this process, each with its state
# and its last work item waiting (or being handled), behind which a new one queues
_SENDERS = sa.tuple_(identities.c.channel_id, identities.c.external_id).in_(
    sa.bindparam("senders", expanding=True)
)
_FIND_LEAN = (
    sa.select(
        conversations.c.id,
        conversations.c.contact_id,
        identities.c.channel_id,
        identities.c.external_id,
    )
    .join(conversations, conversations.c.identity_id == identities.c.id)
    .where(conversations.c.status == "open")
    .where(_SENDERS)
)
_FIND = (
    with_state(
        sa.select(conversations.c.id, identities.c.channel_id, identities.c.external_id),
        identified=True,
    )
    .add_columns(
        sa.select(sa.func.max(work_items.c.id))
        .where(work_items.c.conversation_id == conversations.c.id)
        .where(work_items.c.status == "pending")
        .scalar_subquery()
        .label("waiting_through")
    )
    .where(conversations.c.status == "open")
    .where(_SENDERS)
)


# a known identity's new address (a Bot Framework conversation reference moved)
_READDRESS = (
    identities.update()
    .where(identities.c.channel_id == sa.bindparam("a_channel"))
    .where(identities.c.external_id == sa.bindparam("a_external"))
    .where(identities.c.address.is_distinct_from(sa.bindparam("a_address")))
    .values(address=sa.bindparam("a_address"))
)


def _store_messages(db: Database) -> Any:
    return (
        db.insert(messages)
        .on_conflict_do_nothing()
        .returning(messages.c.id, messages.c.channel_id, messages.c.external_id)
    )


@dataclass
class Stored:
    """What one request's events did: new message ids, duplicates, status/edit updates."""

    message_ids: list[int] = field(default_factory=list)
    conversation_ids: set[int] = field(default_factory=set)  # those with new work
    duplicates: int = 0
    updated: int = 0
    ready: dict[int, Ready] = field(default_factory=dict)  # work its worker need not read
    events: int = 0  # for outgoing webhooks

    @property
    def queued(self) -> int:
        return len(self.message_ids)


@dataclass(frozen=True)
class _Request:
    channel_id: str
    space_id: int
    events: Sequence[Event]


class Ingestor:
    """Commits requests' events; requests arriving during a commit share the next one.

    `hand_over`: the work items and their conversations' state go to this process's
    worker (`Stored.ready`), read with the conversation; without a worker here (`serve
    --no-work`, scale-out `web`) the lean query does."""

    def __init__(
        self,
        db: Database,
        topics: Topics | None = None,
        hand_over: bool = True,
    ) -> None:
        self._db = db
        self._topics = topics
        self._hand_over = hand_over
        self.on_events: Callable[[], None] | None = None  # wakes the webhook relay
        self._group: GroupCommitter[_Request, Stored] = GroupCommitter(db, self._write)
        self._last = -1.0  # when the last request was stored (monotonic)

    def active(self, within: float = 0.1) -> bool:
        """Did a request arrive in the last `within` seconds? (Background work yields.)"""
        return time.monotonic() - self._last < within

    async def store(self, channel_id: str, space_id: int, events: Sequence[Event]) -> Stored:
        """Return once `events` are committed (durable), or raise if they could not be."""
        self._last = time.monotonic()
        stored = await self._group.submit(_Request(channel_id, space_id, events))
        if stored.events and self.on_events is not None:
            self.on_events()
        return stored

    async def close(self) -> None:
        await self._group.close()

    async def _write(self, conn: AsyncConnection, batch: list[_Request]) -> list[Stored]:
        return await _write(self._db, conn, batch, self._hand_over, self._topics)


async def _write(
    db: Database,
    conn: AsyncConnection,
    batch: list[_Request],
    hand_over: bool,
    topics: Topics | None,
) -> list[Stored]:
    results = [Stored() for _ in batch]
    inbound = [
        (n, request, event)
        for n, request in enumerate(batch)
        for event in request.events
        if isinstance(event, Inbound)
    ]
    if inbound:
        await _inbound(db, conn, inbound, results, hand_over, topics)
    # after the inserts, so an edit finds a message that arrived in the same batch
    for n, request in enumerate(batch):
        for event in request.events:
            if not isinstance(event, Inbound):
                changed = await apply(conn, request.channel_id, event, topics)
                results[n].updated += changed.rows
                results[n].events += changed.events
    return results


async def _inbound(
    db: Database,
    conn: AsyncConnection,
    inbound: list[tuple[int, _Request, Inbound]],
    results: list[Stored],
    hand_over: bool,
    topics: Topics | None,
) -> None:
    at = now()
    senders = {(r.channel_id, e.sender.external_id): (r.space_id, e.sender) for _, r, e in inbound}
    conversation, created, states, contact_of = await _conversations(
        db, conn, senders, at, hand_over
    )
    moved = [
        {"a_channel": channel_id, "a_external": external_id, "a_address": sender.address}
        for (channel_id, external_id), (_, sender) in senders.items()
        if sender.address is not None and (channel_id, external_id) not in created
    ]
    if moved:  # only channels with addresses: the others' commits keep their statements
        await conn.execute(_READDRESS, moved)
    rows = [
        {
            "space_id": request.space_id,
            "conversation_id": conversation[request.channel_id, event.sender.external_id][0],
            "channel_id": request.channel_id,
            "direction": "in",
            "sender_type": "contact",
            "external_id": event.external_id,
            "parts": parts_adapter.dump_python(list(inbound_parts(event)), mode="json"),
            "status": "received",
            "created_at": at,
        }
        for _, request, event in inbound
    ]
    inserted = {
        (row.channel_id, row.external_id): row.id
        for row in await conn.execute(db.prepared(_store_messages), rows)
    }
    queue = []
    owners = []  # the request of each queued item
    news: list[dict[str, Any]] = []  # for outgoing webhooks
    for (n, request, event), row in zip(inbound, rows, strict=True):
        message_id = inserted.pop((request.channel_id, event.external_id), None)
        if message_id is None:  # already stored, or twice in this batch
            results[n].duplicates += 1
            continue
        conversation_id, opened = conversation[request.channel_id, event.sender.external_id]
        new_contact = opened and (request.channel_id, event.sender.external_id) in created
        if topics is not None:
            heard = _news(topics, row, message_id, contact_of[conversation_id], opened, new_contact)
            results[n].events += len(heard)
            news.extend(heard)
        results[n].message_ids.append(message_id)
        results[n].conversation_ids.add(conversation_id)
        queue.append(
            {
                "conversation_id": conversation_id,
                "payload": {
                    "event": event.model_dump(mode="json"),
                    "message_id": message_id,
                    "opened": opened,
                    "created": new_contact,
                },
                "created_at": at,
            }
        )
        owners.append(n)
        # only the first message of a new conversation counts as opening it
        conversation[request.channel_id, event.sender.external_id] = (conversation_id, False)
    if news:
        await conn.execute(webhook_events.insert(), news)
    if not queue:
        return
    if not hand_over:
        await conn.execute(work_items.insert(), queue)
        return
    made = await db.insert_ids(conn, work_items, queue)
    # handed to the worker as they are, each request's saying what came before it
    before = {conversation_id: after for conversation_id, (_, after) in states.items()}
    for n, item, item_id in zip(owners, queue, made, strict=True):
        conversation_id = item["conversation_id"]
        if conversation_id in states:
            ready = results[n].ready.get(conversation_id)
            if ready is None:
                state = states[conversation_id][0]
                ready = Ready(state, [], before[conversation_id])
                results[n].ready[conversation_id] = ready
            ready.items.append(WorkItem(item_id, conversation_id, item["payload"], at))
            before[conversation_id] = item_id


async def _conversations(
    db: Database,
    conn: AsyncConnection,
    senders: dict[tuple[str, str], tuple[int, Sender]],
    at: datetime,
    hand_over: bool,
) -> tuple[
    dict[tuple[str, str], tuple[int, bool]],
    set[tuple[str, str]],
    dict[int, tuple[ConversationState, int | None]],
    dict[int, int],
]:
    """`(channel, sender) -> (open conversation id, just opened)`, creating what is missing;
    the senders who are new contacts; each open conversation's state, with its last
    work item waiting (the worker starts from them, reading nothing); each conversation's
    contact."""
    result: dict[tuple[str, str], tuple[int, bool]] = {}
    states: dict[int, tuple[ConversationState, int | None]] = {}
    contact_of: dict[int, int] = {}
    for row in await conn.execute(_FIND if hand_over else _FIND_LEAN, {"senders": list(senders)}):
        result[row.channel_id, row.external_id] = (row.id, False)
        contact_of[row.id] = row.contact_id
        if hand_over:
            states[row.id] = (state_of(row), row.waiting_through)
    rest = [key for key in senders if key not in result]
    if not rest:
        return result, set(), states, contact_of
    # without an open conversation: known identities, or strangers
    known: dict[tuple[str, str], tuple[int, int]] = {
        (row.channel_id, row.external_id): (row.id, row.contact_id)
        for row in await conn.execute(
            sa.select(
                identities.c.id,
                identities.c.channel_id,
                identities.c.external_id,
                identities.c.contact_id,
            ).where(sa.tuple_(identities.c.channel_id, identities.c.external_id).in_(rest))
        )
    }
    # newcomers in bulk: one statement per table however many arrive at once (one by
    # one, fifty new visitors made the first ack of each wait about 350 ms)
    strangers = [key for key in rest if key not in known]
    if strangers:
        made = await _new_contacts(db, conn, strangers, senders, at)
        known.update(zip(strangers, made, strict=True))
    opened = await db.insert_ids(
        conn,
        conversations,
        [
            {
                "space_id": senders[key][0],
                "contact_id": known[key][1],
                "channel_id": key[0],
                "identity_id": known[key][0],
                "created_at": at,
            }
            for key in rest
        ],
    )
    for key, conversation_id in zip(rest, opened, strict=True):
        result[key] = (conversation_id, True)
        contact_of[conversation_id] = known[key][1]
    return result, set(strangers), states, contact_of


def _news(
    topics: Topics,
    message: dict[str, Any],
    message_id: int,
    contact_id: int,
    opened: bool,
    new_contact: bool,
) -> list[dict[str, Any]]:
    """The events a stored message makes, for the subscriptions that hear them."""
    space_id, conversation_id = message["space_id"], message["conversation_id"]
    channel_id = message["channel_id"]
    rows = []
    if new_contact and topics.wants(space_id, "contact.created"):
        contact = {"id": contact_id, "channel_id": channel_id}
        rows.append(event_row(space_id, "contact.created", {"contact": contact}, conversation_id))
    if opened and topics.wants(space_id, "conversation.opened"):
        opened_one = {"id": conversation_id, "contact_id": contact_id, "channel_id": channel_id}
        rows.append(
            event_row(
                space_id, "conversation.opened", {"conversation": opened_one}, conversation_id
            )
        )
    if topics.wants(space_id, "message.received"):
        received = {
            "id": message_id,
            "conversation_id": conversation_id,
            "contact_id": contact_id,
            "channel_id": channel_id,
            "external_id": message["external_id"],
            "parts": message["parts"],
            "created_at": iso(message["created_at"]),
        }
        rows.append(event_row(space_id, "message.received", {"message": received}, conversation_id))
    return rows


async def _new_contacts(
    db: Database,
    conn: AsyncConnection,
    keys: list[tuple[str, str]],
    senders: dict[tuple[str, str], tuple[int, Sender]],
    at: datetime,
) -> list[tuple[int, int]]:
    """A contact and its identity for each `(channel, sender)`: `(identity id, contact id)`."""
    contact_ids = await db.insert_ids(
        conn,
        contacts,
        [
            {
                "space_id": space_id,
                "name": sender.name,
                "language": sender.language,
                "phone": sender.phone,
                "avatar_url": sender.avatar_url,
                "created_at": at,
            }
            for space_id, sender in (senders[key] for key in keys)
        ],
    )
    linked = await db.insert_ids(
        conn,
        identities,
        [
            {
                "contact_id": contact_id,
                "channel_id": channel_id,
                "external_id": external_id,
                "address": senders[channel_id, external_id][1].address,
            }
            for (channel_id, external_id), contact_id in zip(keys, contact_ids, strict=True)
        ],
    )
    return list(zip(linked, contact_ids, strict=True))
