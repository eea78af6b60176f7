"""Handle one work item: run the handlers, then commit their effects and drop the item.

At-least-once: if the process dies before the commit, the item is still there and
is handled again on restart; outbound rows carry a dedupe key derived from the
inbound message, so a second run writes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.bots import BotProvider
from bot.handling import ConversationState, HandlerContext
from bot.ingest import now
from bot.metrics import Metrics
from bot.model import event_adapter, parts_adapter
from bot.plugins import Handler
from bot.storage.db import Database
from bot.storage.tables import contacts, conversations, messages, outbox, work_items

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    id: int
    conversation_id: int
    payload: dict[str, Any]


class Worker:
    def __init__(
        self, db: Database, handlers: Sequence[Handler], bots: BotProvider, metrics: Metrics
    ) -> None:
        self._db = db
        self._handlers = handlers
        self._bots = bots
        self._metrics = metrics

    async def process(self, item: WorkItem) -> int:
        """Handle `item` to completion; returns how many outbound messages it queued."""
        while True:
            state = await self._load(item.conversation_id)
            ctx = HandlerContext(
                event=event_adapter.validate_python(item.payload["event"]),  # type: ignore[arg-type]
                message_id=item.payload["message_id"],
                opened=item.payload.get("opened", False),
                conversation=state,
                bots=self._bots,
            )
            for handler in self._handlers:
                if await handler(ctx.event, ctx):
                    break
            committed = await self._commit(item, ctx)
            if committed is not None:
                return committed
            log.info(
                "conversation changed hands while handling; handling again",
                extra={"conversation": state.id, "work_item": item.id},
            )

    async def _load(self, conversation_id: int) -> ConversationState:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        conversations.c.id,
                        conversations.c.space_id,
                        conversations.c.contact_id,
                        conversations.c.channel_id,
                        conversations.c.handler,
                        conversations.c.status,
                        contacts.c.language,
                    )
                    .join(contacts, contacts.c.id == conversations.c.contact_id)
                    .where(conversations.c.id == conversation_id)
                )
            ).one()
        return ConversationState(**row._mapping)

    async def _commit(self, item: WorkItem, ctx: HandlerContext) -> int | None:
        """Write the effects unless the handler changed meanwhile; None means 'run again'."""
        state = ctx.conversation
        async with self._db.write() as conn:
            handler = (
                await conn.execute(
                    sa.select(conversations.c.handler).where(conversations.c.id == state.id)
                )
            ).scalar_one()
            if handler != state.handler:
                return None
            at = now()
            queued = 0
            for n, parts in enumerate(ctx.replies):
                message_id = (
                    await conn.execute(
                        self._db.insert(messages)
                        .values(
                            space_id=state.space_id,
                            conversation_id=state.id,
                            channel_id=state.channel_id,
                            direction="out",
                            dedupe_key=f"{ctx.message_id}:{n}",
                            reply_to_id=ctx.message_id,
                            parts=parts_adapter.dump_python(list(parts), mode="json"),
                            status="pending",
                            created_at=at,
                        )
                        .on_conflict_do_nothing()
                        .returning(messages.c.id)
                    )
                ).scalar()
                if message_id is not None:
                    await conn.execute(
                        outbox.insert().values(
                            message_id=message_id, channel_id=state.channel_id, next_attempt_at=at
                        )
                    )
                    queued += 1
            if ctx.new_handler and ctx.new_handler != state.handler:
                await conn.execute(
                    conversations.update()
                    .where(conversations.c.id == state.id)
                    .values(handler=ctx.new_handler)
                )
            # kept off the ingest hot path: the conversation and contact were active now
            await conn.execute(
                conversations.update()
                .where(conversations.c.id == state.id)
                .values(last_message_at=at)
            )
            await conn.execute(
                contacts.update()
                .where(contacts.c.id == state.contact_id)
                .values(last_message_at=at)
            )
            await conn.execute(work_items.delete().where(work_items.c.id == item.id))
        self._metrics.messages.labels(direction="out").inc(queued)
        return queued
