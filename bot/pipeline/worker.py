"""Handle one work item: run the handlers, then commit their effects and drop the item.

At-least-once: if the process dies before the commit, the item is still there and
is handled again on restart; outbound rows carry a dedupe key derived from the
inbound message, so a second run writes nothing twice. Handlers run outside any
transaction (a bot may take seconds); their effects are group-committed with
other conversations' and only if nobody changed the conversation's handler
meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.errors import ChanCenterError
from bot.keys import PLUGINS, AgentDesk
from bot.metrics import Metrics
from bot.model import Author, Due, Part, event_adapter, parts_adapter
from bot.pipeline.bots import BotProvider
from bot.pipeline.handling import ConversationState, FlowStarter, HandlerContext, HandOver
from bot.plugins import Handler
from bot.storage.db import Database
from bot.storage.group import GroupCommitter
from bot.storage.tables import (
    assignments,
    contacts,
    conversations,
    desk_outbox,
    identities,
    messages,
    outbox,
    spaces,
    work_items,
)
from bot.workspace.contacts import set_field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    id: int
    conversation_id: int
    payload: dict[str, Any]
    created_at: datetime | None = None  # a message's: when the contact wrote


@dataclass(frozen=True)
class Ready:
    """A conversation's new work, as its ingest committed it, with the conversation's state:
    its drain starts without reading either."""

    state: ConversationState
    items: list[WorkItem]
    after: int | None = None  # the conversation's last item pending before them


class Outlet(Protocol):
    """The sender, as the worker sees it."""

    def offer(self, due: Sequence[Due], after: int | None) -> None: ...

    def notify(self) -> None: ...


def with_state(query: sa.Select[Any], identified: bool = False) -> sa.Select[Any]:
    """`query` (over conversations) plus what a handler sees of the conversation.

    `identified`: only conversations with an identity, so a query that picks identities
    can start from their index (SQLite keeps a left join's order: it scanned every open
    conversation)."""
    return (
        query.add_columns(
            conversations.c.space_id,
            conversations.c.contact_id,
            conversations.c.channel_id,
            conversations.c.handler,
            conversations.c.status,
            contacts.c.language,
            conversations.c.bot_fallbacks,
            conversations.c.away_sent_at,
            spaces.c.settings.label("space_settings"),
            spaces.c.timezone,
            spaces.c.automations_version,
            identities.c.id.label("identity_id"),
            identities.c.external_id.label("recipient"),
            identities.c.address,
            identities.c.blocked,
        )
        .join_from(conversations, contacts, contacts.c.id == conversations.c.contact_id)
        .join(spaces, spaces.c.id == conversations.c.space_id)
        .join(identities, identities.c.id == conversations.c.identity_id, isouter=not identified)
    )


def state_of(row: Any) -> ConversationState:
    """A `with_state` row (its conversation id labelled `id`) as the handlers' state."""
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(ConversationState)}
    return ConversationState(**{**values, "space_settings": row.space_settings or {}})


@dataclass
class _Effects:
    item: WorkItem
    ctx: HandlerContext
    due: list[Due] = field(default_factory=list)  # what the sender is handed after the commit
    after: int | None = None  # the conversation's last outbox row before them
    look: bool = False  # the outbox may hold rows the sender must look for


# Built once: building a statement and its cache key cost more than running it.
# Conversations that were active `at` (`ids` are all of the batch's), with their handler,
# and the last of their messages waiting in the outbox: later ones queue behind it (text:
# SQLite's RETURNING drops the tables' names, which makes `id` ambiguous there).
_TOUCH = (
    conversations.update()
    .where(conversations.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(
        last_message_at=sa.case(
            (conversations.c.id.in_(sa.bindparam("active", expanding=True)), sa.bindparam("at")),
            else_=conversations.c.last_message_at,
        )
    )
    .returning(
        conversations.c.id,
        conversations.c.handler,
        sa.literal_column(
            "(SELECT max(outbox.id) FROM outbox WHERE outbox.conversation_id = conversations.id)",
            sa.Integer,
        ).label("owed_through"),
    )
)
_TOUCH_CONTACTS = (
    contacts.update()
    .where(contacts.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(last_message_at=sa.bindparam("at"))
)
_DONE = work_items.delete().where(work_items.c.id.in_(sa.bindparam("ids", expanding=True)))


def _store_replies(db: Database) -> Any:
    return (
        db.insert(messages).on_conflict_do_nothing().returning(messages.c.id, messages.c.dedupe_key)
    )


class Worker:
    def __init__(
        self,
        db: Database,
        handlers: Sequence[Handler],
        bots: BotProvider,
        metrics: Metrics,
        app: web.Application,
        desk: AgentDesk | None = None,
        handover: HandOver | None = None,
        flows: FlowStarter | None = None,
        sender: Outlet | None = None,
    ) -> None:
        """`handover` and `flows` default to the app's plugins (`chancenter.handover`,
        `chancenter.flows`): what the handlers' contexts carry. The `sender` is handed
        the replies once they are committed."""
        self._app = app
        self._sender = sender
        plugins = app.get(PLUGINS)
        self._handover = handover or (plugins.handover if plugins else None)
        self._flows = flows or (plugins.flows if plugins else None)
        self._desk = desk
        self._db = db
        self._handlers = handlers
        self._bots = bots
        self._metrics = metrics
        self._group: GroupCommitter[_Effects, bool] = GroupCommitter(db, self._write)

    async def process(
        self, item: WorkItem, state: ConversationState | None = None
    ) -> ConversationState:
        """Handle `item` to completion; returns the conversation's state afterwards.

        `state` is what the previous item of the same conversation left; a stale
        one costs a second run, never a wrong write.
        """
        while True:
            if state is None:
                state = await self.load(item.conversation_id)
            payload = item.payload
            message_id = payload.get("message_id")
            ctx = HandlerContext(
                event=(
                    event_adapter.validate_python(payload["event"])  # type: ignore[arg-type]
                    if "event" in payload
                    else None
                ),
                message_id=message_id,
                opened=payload.get("opened", False),
                created=payload.get("created", False),
                automation=payload.get("automation"),
                key=str(message_id) if message_id is not None else f"w{item.id}",
                conversation=state,
                bots=self._bots,
                db=self._db,
                metrics=self._metrics,
                app=self._app,
                desk_enabled=self._desk is not None and self._desk.serves(state.space_id),
                handover=self._handover,
                flows=self._flows,
            )
            for handler in self._handlers:
                if await handler(ctx.event, ctx):
                    break
            effects = _Effects(item, ctx)
            if await self._group.submit(effects):
                if ctx.desk and self._desk is not None:
                    self._desk.notify()
                if self._sender is not None:
                    if effects.due:
                        self._sender.offer(effects.due, effects.after)
                    if effects.look:
                        self._sender.notify()
                for callback in ctx.after_commit:
                    callback()
                return dataclasses.replace(
                    state,
                    handler=ctx.new_handler or state.handler,
                    bot_fallbacks=(
                        ctx.bot_fallbacks if ctx.bot_fallbacks is not None else state.bot_fallbacks
                    ),
                    away_sent_at=now() if ctx.away_sent else state.away_sent_at,
                )
            log.info(
                "conversation changed hands while handling; handling again",
                extra={"conversation": state.id, "work_item": item.id},
            )
            state = None

    async def close(self) -> None:
        await self._group.close()

    async def load(self, conversation_id: int) -> ConversationState:
        async with self._db.glance() as conn:
            query = with_state(sa.select(conversations.c.id))
            row = (await conn.execute(query.where(conversations.c.id == conversation_id))).one()
        return state_of(row)

    async def _write_state(self, conn: AsyncConnection, ctx: HandlerContext, at: Any) -> None:
        """Handover, assignment, counters, fields and desk notices a handler asked for."""
        conversation = ctx.conversation
        values: dict[str, Any] = {}
        if ctx.bot_fallbacks not in (None, conversation.bot_fallbacks):
            values["bot_fallbacks"] = ctx.bot_fallbacks
        if ctx.new_handler and ctx.new_handler != conversation.handler:
            values["handler"] = ctx.new_handler
            values["bot_fallbacks"] = 0
        if ctx.assignee_id is not None:
            values["assignee_id"] = ctx.assignee_id
        if ctx.assignee_id is not None or values.get("handler") in ("waiting", "agent"):
            c = conversations.c  # people take part: remembered once, for the reports
            values["handed_over_at"] = sa.func.coalesce(c.handed_over_at, at)
        if ctx.team_id is not None:
            values["team_id"] = ctx.team_id
        if ctx.away_sent:
            values["away_sent_at"] = at
        if values:
            await conn.execute(
                conversations.update().where(conversations.c.id == conversation.id).values(**values)
            )
        if ctx.assignee_id is not None:
            await conn.execute(
                assignments.insert().values(
                    conversation_id=conversation.id, user_id=ctx.assignee_id
                )
            )
        for write in ctx.writes:
            await write(conn)
        for key, value in ctx.set_fields.items():
            try:
                await set_field(
                    conn, conversation.space_id, conversation.contact_id, key, value, ctx.depth
                )
            except ChanCenterError as exc:
                log.warning(
                    "bot asked to save a field that was refused",
                    extra={"conversation": conversation.id, "field": key, "error": str(exc)},
                )
        if ctx.desk:
            await conn.execute(
                desk_outbox.insert(),
                [
                    {
                        "conversation_id": conversation.id,
                        "kind": kind,
                        "message_id": ctx.message_id if kind == "message" else None,
                        "note": note,
                        "next_attempt_at": at,
                    }
                    for kind, note in ctx.desk
                ],
            )

    async def _queue(self, conn: AsyncConnection, done: list[_Effects], at: datetime) -> None:
        """Write the replies and their outbox rows; the sender is handed them on the
        effects, unless it must look for them (an agent's name, an automation's send)."""
        replies: list[dict[str, Any]] = []
        made: dict[str, tuple[_Effects, tuple[Part, ...], Author]] = {}
        for e in done:
            conversation = e.ctx.conversation
            for n, (parts, author) in enumerate(e.ctx.replies):
                key = f"{e.ctx.key}:{n}"
                made[key] = (e, parts, author)
                replies.append(
                    {
                        "space_id": conversation.space_id,
                        "conversation_id": conversation.id,
                        "channel_id": conversation.channel_id,
                        "direction": "out",
                        "dedupe_key": key,
                        "reply_to_id": e.ctx.message_id,
                        "parts": parts_adapter.dump_python(list(parts), mode="json"),
                        "status": "pending",
                        "sender_type": author.type,
                        "sender_id": author.id,
                        "created_at": at,
                    }
                )
        if not replies:
            return
        inserted = sorted(
            await conn.execute(self._db.prepared(_store_replies), replies),
            key=lambda r: r.id,  # the outbox in the order the replies were written
        )
        if not inserted:
            return
        of = [made[r.dedupe_key][0].ctx.conversation for r in inserted]
        queued = await self._db.insert_ids(
            conn,
            outbox,
            [
                {
                    "message_id": r.id,
                    "channel_id": conversation.channel_id,
                    "conversation_id": conversation.id,
                    "next_attempt_at": at,
                }
                for r, conversation in zip(inserted, of, strict=True)
            ],
        )
        for r, outbox_id in zip(inserted, queued, strict=True):
            e, parts, author = made[r.dedupe_key]
            state = e.ctx.conversation
            # a person's name, or an automation's time of last inbound, is the sender's to
            # read; and what follows a reply it must look for waits for that one
            if (
                e.look
                or state.recipient is None
                or author.type == "user"
                or (e.ctx.message_id is None or e.item.created_at is None)
            ):
                e.look = True
                continue
            e.due.append(
                Due(
                    id=outbox_id,
                    attempts=0,
                    channel_id=state.channel_id,
                    message_id=r.id,
                    conversation_id=state.id,
                    parts=parts,
                    identity_id=state.identity_id,
                    recipient=state.recipient,
                    address=state.address,
                    blocked=state.blocked,
                    last_inbound_at=e.item.created_at,
                )
            )

    async def _write(self, conn: AsyncConnection, batch: list[_Effects]) -> list[bool]:
        """One transaction for many conversations' effects; False: the handler changed."""
        at = now()
        for e in batch:  # a batch that failed is committed again one by one
            e.due.clear()
            e.look = False
        # kept off the ingest hot path: these conversations were active now (an
        # automation's timer is no activity). Updating first also locks them (PostgreSQL)
        # while their handler is checked
        active = [e.ctx.conversation.id for e in batch if e.ctx.message_id is not None]
        found = {
            row.id: row
            for row in await conn.execute(
                _TOUCH, {"ids": [e.ctx.conversation.id for e in batch], "active": active, "at": at}
            )
        }
        ok = [
            (row := found.get(e.ctx.conversation.id)) is not None
            and row.handler == e.ctx.conversation.handler
            for e in batch
        ]
        done = [e for e, fine in zip(batch, ok, strict=True) if fine]
        if not done:
            return ok
        for e in done:
            e.after = found[e.ctx.conversation.id].owed_through
        await self._queue(conn, done, at)
        for e in done:
            await self._write_state(conn, e.ctx, at)
            e.look = e.look or bool(e.ctx.writes)  # a flow may have queued messages
        wrote = [e.ctx.conversation.contact_id for e in done if e.ctx.message_id is not None]
        if wrote:
            await conn.execute(_TOUCH_CONTACTS, {"ids": wrote, "at": at})
        # a contact with a newly opened conversation is open again, whoever handled it
        opened = [e.ctx.conversation.contact_id for e in done if e.ctx.opened]
        if opened:
            await conn.execute(
                contacts.update()
                .where(contacts.c.id.in_(opened), contacts.c.status == "closed")
                .values(status="open")
            )
        await conn.execute(_DONE, {"ids": [e.item.id for e in done]})
        return ok
