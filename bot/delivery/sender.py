"""The sender: delivers outbox rows through their channel, in order per conversation.

A row leaves the outbox when the platform accepted the message (status `sent`)
or refused it for good (status `failed`, with the platform's reason). Transient
failures are retried with backoff, honouring the platform's `retry_after`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import db_datetime, now
from bot.delivery.outbox import drain
from bot.errors import ChanCenterError, PermanentFailure, RecipientBlocked, RetryLater
from bot.metrics import Metrics
from bot.model import Due, Outbound, Reach, parts_adapter
from bot.pipeline.channels import ChannelRegistry
from bot.pipeline.lines import Line, Lines
from bot.pipeline.partitions import Owned, everything, only_owned, partition_of
from bot.storage.db import Database
from bot.storage.group import GroupCommitter
from bot.storage.tables import (
    conversations,
    identities,
    messages,
    outbox,
    users,
    webhook_events,
)
from bot.workspace.events import Topics, event_row

log = logging.getLogger(__name__)

BATCH = 200
MAX_SENDING = 1000  # conversations sending at once (most of them wait on a rate limit)
UNREACHABLE = {
    Reach.BLOCKED: "the contact has blocked this channel; nothing is sent until they unblock",
    Reach.ERASED: "the contact was erased; nothing is ever sent to them",
}

# built once: an alias made per query costs more than the query (column proxies), and a
# statement built per send more than running it
_inbound = messages.alias("inbound")
_earlier = outbox.alias("earlier")
_RECORD = (
    messages.update()
    .where(messages.c.id == sa.bindparam("m_id"))
    .values(
        # a receipt may already have moved it past "sent"
        status=sa.case(
            (messages.c.status == "pending", sa.bindparam("m_status")),
            else_=messages.c.status,
        ),
        external_id=sa.bindparam("m_external_id"),
        error=sa.bindparam("m_error"),
    )
)
_SENT = outbox.delete().where(outbox.c.id.in_(sa.bindparam("ids", expanding=True)))


class Sender:
    def __init__(
        self,
        db: Database,
        channels: ChannelRegistry,
        metrics: Metrics,
        owned: Owned = everything,
        topics: Topics | None = None,
        on_events: Callable[[], None] | None = None,
    ) -> None:
        self.owned = owned
        self._topics = topics
        self._on_events = on_events  # wakes the webhook relay
        self._db = db
        self._channels = channels
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._notified = 0  # how many times rows were said to be due
        self._room = asyncio.Event()  # a line ended: below MAX_SENDING again
        self._lines: Lines[Due] = Lines()  # conversations with a send task running
        self._tasks: set[asyncio.Task[None]] = set()
        self._group: GroupCommitter[_Outcome, None] = GroupCommitter(db, self._write)

    def notify(self) -> None:
        self._notified += 1
        self._wake.set()

    def offer(self, due: Sequence[Due], after: int | None) -> None:
        """Send one conversation's rows, just committed, without looking for them.

        `after` is the conversation's last outbox row committed before them (None: none).
        They are sent at once when nothing came before them, or behind the conversation's
        running sends when those hold everything before; otherwise the sender looks."""
        if not due:
            return
        conversation_id = due[0].conversation_id
        partitions = self.owned()
        line = self._lines.get(conversation_id)
        if partitions is not None and partition_of(conversation_id) not in partitions:
            self.notify()
        elif line is None and self._lines.clear_after(conversation_id, after):
            self._start(conversation_id, due, self._notified)
        elif line is not None and line.holds_all_before(after):
            line.take(due)
        else:
            self.notify()

    async def run(self) -> None:
        await drain(self._db, outbox.c.next_attempt_at, self._wake, self.send_due, "sender", BATCH)

    async def send_due(self) -> int:
        """Start sending the due rows of conversations not already sending; returns how many.

        Each conversation sends in its own task, in order, so one slow chat (a platform's
        per-chat limit, a retry) never holds the others back.
        """
        while len(self._lines) >= MAX_SENDING:
            self._room.clear()
            await self._room.wait()  # a line ends
        seen = self._notified  # before the query: a later commit must be looked for again
        at = now()
        # a row waits while an earlier row of its conversation waits for its retry
        overtakes = (
            sa.exists()
            .where(_earlier.c.conversation_id == outbox.c.conversation_id)
            .where(_earlier.c.id < outbox.c.id)
            .where(_earlier.c.next_attempt_at > at)
        )
        # the latest inbound message is the last to arrive: walked back from the newest
        # (a MAX over the conversation read all its messages, per row)
        last_inbound = (
            sa.select(_inbound.c.created_at)
            .where(_inbound.c.conversation_id == outbox.c.conversation_id)
            .where(_inbound.c.direction == "in")
            .order_by(_inbound.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        async with self._db.glance() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        outbox.c.id,
                        outbox.c.attempts,
                        outbox.c.channel_id,
                        outbox.c.message_id,
                        outbox.c.conversation_id,
                        messages.c.parts,
                        identities.c.id.label("identity_id"),
                        identities.c.external_id.label("recipient"),
                        identities.c.address,
                        identities.c.blocked,
                        last_inbound.label("last_inbound_at"),
                        users.c.name.label("sender_name"),
                    )
                    .join(messages, messages.c.id == outbox.c.message_id)
                    .join(conversations, conversations.c.id == outbox.c.conversation_id)
                    .join(identities, identities.c.id == conversations.c.identity_id)
                    .outerjoin(users, users.c.id == messages.c.sender_user_id)
                    .where(outbox.c.next_attempt_at <= at)
                    .where(only_owned(outbox.c.conversation_id, self.owned))
                    .where(outbox.c.conversation_id.not_in(sorted(self._lines)))
                    .where(~overtakes)
                    .order_by(outbox.c.id)
                    .limit(BATCH)
                )
            ).all()
        by_conversation: dict[int, list[Due]] = defaultdict(list)
        for row in rows:
            by_conversation[row.conversation_id].append(
                Due(**{**row._mapping, "parts": tuple(parts_adapter.validate_python(row.parts))})
            )
        for conversation_id, group in by_conversation.items():
            # one handed over meanwhile (the read waits on PostgreSQL) is already sending
            if conversation_id not in self._lines:
                self._start(conversation_id, group, seen)
        return len(rows)

    def _start(self, conversation_id: int, rows: Sequence[Due], seen: int) -> None:
        line = self._lines.start(conversation_id)
        line.take(rows)
        task = asyncio.create_task(self._send_in_order(conversation_id, line, seen))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_in_order(self, conversation_id: int, line: Line[Due], seen: int) -> None:
        done = False
        try:
            while (row := line.next()) is not None:
                if not await self._send_one(row):
                    self.notify()  # the run loop learns when the retry is due
                    return  # keep order: later messages wait for this one
            done = True
        except Exception:
            log.exception("sending failed unexpectedly", extra={"conversation": conversation_id})
        finally:
            self._lines.end(conversation_id, done)
            self._room.set()
            if self._notified != seen:  # rows came meanwhile: this conversation's may be due
                self.notify()

    async def _send_one(self, row: Due) -> bool:
        """Send one row; False when it must be retried (and later rows wait for it)."""
        outbound = Outbound(
            message_id=row.message_id,
            conversation_id=row.conversation_id,
            recipient=row.recipient,
            address=row.address,
            parts=row.parts,
            last_inbound_at=db_datetime(row.last_inbound_at),
            sender_name=row.sender_name,
        )
        try:
            if row.blocked:
                raise RecipientBlocked(UNREACHABLE[Reach(row.blocked)])
            channel = await self._channels.get(row.channel_id)
            receipt = await channel.send(outbound)
        except PermanentFailure as exc:
            # newly blocked: noted on the identity (an erased one stays erased)
            fresh = isinstance(exc, RecipientBlocked) and not row.blocked
            blocked = row.identity_id if fresh else None
            await self._record(
                _Outcome(row.id, row.message_id, "failed", error=exc.reason, blocks=blocked)
            )
            self._metrics.send_failures.labels(kind="permanent").inc()
            log.warning(
                "send failed for good", extra={"message_id": row.message_id, "reason": exc.reason}
            )
            return True
        except (RetryLater, ChanCenterError, OSError, TimeoutError) as exc:
            after = min(2.0**row.attempts, 300.0)
            if isinstance(exc, RetryLater) and exc.after is not None:
                after = exc.after
            await self._group.submit(
                _Outcome(row.id, row.message_id, "retry", error=str(exc)[:1000], after=after)
            )
            self._metrics.send_failures.labels(kind="retry").inc()
            log.warning(
                "send failed, will retry",
                extra={"message_id": row.message_id, "after": after, "error": str(exc)},
            )
            return False
        await self._record(
            _Outcome(row.id, row.message_id, "sent", external_id=receipt.external_id)
        )
        return True

    async def _record(self, outcome: _Outcome) -> None:
        """Record a finished send, however long it takes: the send itself is never repeated.

        The platform has the message now; the row may only leave the outbox through here.
        """
        await record(self._group, outcome)
        # every outbound message, whoever wrote it, leaves the outbox once, here
        self._metrics.messages.labels(direction="out").inc()
        if self._on_events is not None and self._wants(outcome.status):
            self._on_events()

    def _wants(self, status: str) -> bool:
        """Does any space hear what a send ending in `status` tells?"""
        event_type = "message.sent" if status == "sent" else "message.status"
        return self._topics is not None and self._topics.anyone_wants(event_type)

    async def _write(self, conn: AsyncConnection, outcomes: list[_Outcome]) -> list[None]:
        """Record many sends' outcomes in one transaction."""
        finished = [o for o in outcomes if o.status != "retry"]
        if finished:
            await conn.execute(
                _RECORD,
                [
                    {
                        "m_id": o.message_id,
                        "m_status": o.status,
                        "m_external_id": o.external_id,
                        "m_error": o.error,
                    }
                    for o in finished
                ],
            )
            await conn.execute(_SENT, {"ids": [o.outbox_id for o in finished]})
            told = [o for o in finished if self._wants(o.status)]
            if told:
                await _tell(conn, self._topics, told)
            blocks = [o.blocks for o in finished if o.blocks is not None]
            if blocks:
                await conn.execute(
                    identities.update()
                    .where(identities.c.id.in_(blocks))
                    .values(blocked=int(Reach.BLOCKED))
                )
        at = now()
        for o in outcomes:
            if o.status == "retry":
                await conn.execute(
                    outbox.update()
                    .where(outbox.c.id == o.outbox_id)
                    .values(
                        attempts=outbox.c.attempts + 1,
                        next_attempt_at=at + timedelta(seconds=o.after),
                        last_error=o.error,
                    )
                )
        return [None] * len(outcomes)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._group.close()


async def _tell(conn: AsyncConnection, topics: Topics | None, told: list[_Outcome]) -> None:
    """`message.sent` (or `message.status` failed) for the spaces that hear it."""
    assert topics is not None
    outcomes = {o.message_id: o for o in told}
    rows = await conn.execute(
        sa.select(
            messages.c.id,
            messages.c.space_id,
            messages.c.conversation_id,
            messages.c.channel_id,
            messages.c.sender_type,
            messages.c.sender_id,
            conversations.c.contact_id,
        )
        .join(conversations, conversations.c.id == messages.c.conversation_id)
        .where(messages.c.id.in_(outcomes))
    )
    events = []
    for row in rows:
        o = outcomes[row.id]
        event_type = "message.sent" if o.status == "sent" else "message.status"
        if not topics.wants(row.space_id, event_type):
            continue
        message = {
            "id": row.id,
            "conversation_id": row.conversation_id,
            "contact_id": row.contact_id,
            "channel_id": row.channel_id,
            "sender": {"type": row.sender_type, "id": row.sender_id},
            "status": o.status,
            **({"external_id": o.external_id} if o.status == "sent" else {"error": o.error}),
        }
        events.append(
            event_row(row.space_id, event_type, {"message": message}, row.conversation_id)
        )
    if events:
        await conn.execute(webhook_events.insert(), events)


class Recorded(Protocol):
    message_id: int
    external_id: str | None


R = TypeVar("R", bound=Recorded)


async def record(group: GroupCommitter[R, None], outcome: R) -> None:
    """Commit a send's outcome however long it takes: the send itself is never repeated.

    Shared by the sender and the broadcast runner."""
    pause = 0.1
    while True:
        try:
            await group.submit(outcome)
            return
        except sa.exc.IntegrityError:
            # the platform's id is already recorded for another message: keep ours without it
            log.warning(
                "platform message id already recorded; stored without it",
                extra={"message_id": outcome.message_id, "external_id": outcome.external_id},
            )
            outcome = replace(outcome, external_id=None)  # type: ignore[type-var]
        except Exception:
            log.exception(
                "recording a send failed; trying again", extra={"message_id": outcome.message_id}
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)


@dataclass(frozen=True)
class _Outcome:
    outbox_id: int
    message_id: int
    status: str  # sent | failed | retry
    external_id: str | None = None
    error: str | None = None
    after: float = 0.0
    blocks: int | None = None  # the identity that blocked us
