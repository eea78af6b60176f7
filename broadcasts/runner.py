"""The broadcast runner: plans running broadcasts and sends them, paced, each recipient once.

Every process that works the queue runs one. A recipient row is claimed (`sending`, with
this runner's name) in the transaction that writes its message into the contact's
history, then sent, then recorded: a row is never claimed twice, so no contact receives
a broadcast twice from the database's point of view. A process killed while sending
leaves rows `sending`; whoever next owns their partition (the restarted process, or
another worker in scale-out) marks them `interrupted`, not sent again, and the report
counts them.

Sends yield to conversation replies in the channel's token buckets
(`ratelimit.yielding`) and, on SQLite, for the writer: a reply never waits behind the
broadcast for a token or a transaction (it still shares the event loop). About half a
second of the channel's budget is in flight at a time: a pause stops the sending within
a second. The message goes into the contact's latest conversation (a
closed one stays closed; none is opened), and no handler runs for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.delivery.outbox import wait_for_event
from bot.delivery.ratelimit import yielding
from bot.delivery.sender import record
from bot.errors import (
    ChanCenterError,
    Conflict,
    InvalidPayload,
    PermanentFailure,
    RecipientBlocked,
    RetryLater,
)
from bot.model import Reach
from bot.pipeline.channels import ChannelRegistry
from bot.pipeline.partitions import Owned, only_owned
from bot.storage.db import Database
from bot.storage.group import GroupCommitter
from bot.storage.tables import (
    broadcast_recipients,
    broadcasts,
    identities,
    messages,
)
from bot.workspace.events import emit
from broadcasts import store
from broadcasts.claims import Claim, take
from broadcasts.planning import plan_page

log = logging.getLogger(__name__)

POLL = 0.5  # seconds between looks for broadcasts to start, resume or finish
MAX_ATTEMPTS = 20  # refusals (429, 5xx) of one recipient before it is marked failed
UNKNOWN = "the platform did not answer: not sent again, so they never get it twice"
MAX_BATCH = 200  # sends in flight: at most half a second of the channel's budget
CLAIM = 25  # recipients a claim takes: short transactions keep the writer free for replies
INTERRUPTED = (
    "in flight when its process stopped: not sent again, so nobody gets it twice "
    "(the platform may or may not have delivered it)"
)
_r = broadcast_recipients.c


# built once: recording runs for every send
_RECIPIENT_DONE = (
    broadcast_recipients.update()
    .where(_r.id == sa.bindparam("r_id"))
    .values(
        status=sa.bindparam("r_status"),
        reason=sa.bindparam("r_reason"),
        sent_at=sa.bindparam("r_sent_at"),
    )
)
_MESSAGE_DONE = (
    messages.update()
    .where(messages.c.id == sa.bindparam("m_id"))
    .values(
        # a receipt may already have moved it past "sent"; a sweep that took this process
        # for dead is overruled by what really happened
        status=sa.case(
            (
                sa.or_(messages.c.status == "pending", messages.c.error == INTERRUPTED),
                sa.bindparam("m_status"),
            ),
            else_=messages.c.status,
        ),
        external_id=sa.bindparam("m_external_id"),
        error=sa.bindparam("m_error"),
    )
)


@dataclass(frozen=True)
class _Outcome:
    recipient_id: int
    message_id: int
    status: str  # sent | failed | interrupted | retry
    external_id: str | None = None
    error: str | None = None
    after: float = 0.0
    blocks: int | None = None  # the identity that blocked us


class BroadcastRunner:
    def __init__(self, db: Database, channels: ChannelRegistry, owned: Owned) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._db = db
        self._channels = channels
        self._owned = owned
        self._wake = asyncio.Event()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._swept: set[int] | None = None  # partitions whose dead claims were swept
        self._holds: dict[str, float] = {}  # channel -> monotonic time its 429 ends
        self._group: GroupCommitter[_Outcome, None] = GroupCommitter(db, self._write, yielding=True)

    def notify(self) -> None:
        """Wake the runner: a broadcast started or resumed in this process."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.round()
                except Exception:
                    log.exception("broadcast round failed; trying again shortly")
                await wait_for_event(self._wake, POLL)
        finally:
            await self.close()

    async def round(self) -> None:
        """Sweep dead claims, start what is due, and work every running broadcast."""
        await self._sweep()
        async with self._db.read() as conn:
            due = (
                await conn.execute(
                    sa.select(broadcasts.c.id, broadcasts.c.space_id)
                    .where(broadcasts.c.status == "scheduled")
                    .where(broadcasts.c.send_at <= now())
                )
            ).all()
        for broadcast_id, space_id in due:
            await self._start(broadcast_id, space_id)
        async with self._db.read() as conn:
            running = (
                await conn.execute(
                    sa.select(broadcasts.c.id).where(broadcasts.c.status == "running")
                )
            ).scalars()
        for broadcast_id in running:
            if broadcast_id not in self._tasks:
                task = asyncio.create_task(self._work(broadcast_id))
                self._tasks[broadcast_id] = task
                task.add_done_callback(lambda _, b=broadcast_id: self._tasks.pop(b, None))

    async def _start(self, broadcast_id: int, space_id: int) -> None:
        """Start a scheduled broadcast whose time came, as `start` does."""
        try:
            async with self._db.write() as conn:
                await store.move(conn, space_id, broadcast_id, "start")
        except Conflict as exc:  # another process started it, or its view or shortcut is gone
            await self._stop(broadcast_id, str(exc), "scheduled")
            return
        log.info("scheduled broadcast started", extra={"broadcast": broadcast_id})

    async def _work(self, broadcast_id: int) -> None:
        """Plan and send one broadcast until it is done, paused or cancelled.

        Planning runs beside the sending; sends are kept in flight without a gap (the next
        batch is claimed when half of the last is sent), about half a second of the
        channel's budget at a time, so a pause stops them within a second."""
        sending: set[asyncio.Task[None]] = set()
        room_for = asyncio.Event()  # set when a claim's worth of sends has finished
        planning: asyncio.Task[None] | None = None
        try:
            while True:
                async with self._db.read() as conn:
                    b = (
                        await conn.execute(
                            sa.select(broadcasts).where(broadcasts.c.id == broadcast_id)
                        )
                    ).one()
                if b.status != "running":
                    return
                channel = await self._channels.get(b.channel_id)
                window = channel.capabilities.window_hours if channel.capabilities else None
                if not b.planned and (planning is None or planning.done()):
                    planning = asyncio.create_task(self._plan(b.id, channel.kind, window))
                batch = max(1, min(MAX_BATCH, int(channel.per_second / 2)))
                chunk = min(CLAIM, max(1, batch // 2))
                hold = self._holds.get(b.channel_id, 0.0) - time.monotonic()
                if hold > 0:  # the platform asked us to slow down: look again after a while
                    await asyncio.sleep(min(hold, 0.25))
                    continue
                room = min(batch - len(sending), chunk)
                taken, claims = (
                    await take(self._db, b, room, window is not None, self._owned, self.name)
                    if room > 0
                    else (0, [])
                )
                for claim in claims:
                    task = asyncio.create_task(self._send(b, channel, claim))
                    sending.add(task)
                    task.add_done_callback(partial(_done, sending, room_for, batch - chunk))
                if taken and len(sending) <= batch - chunk:
                    continue  # room for another claim at once
                if sending:  # until a claim's worth has been sent (a quarter second at most)
                    room_for.clear()
                    await wait_for_event(room_for, 0.25)
                elif b.planned and await self._finish(b.id):
                    return
                else:  # planning is ahead of us, retries are not yet due, or others' partitions
                    await asyncio.sleep(POLL if b.planned else 0.05)
        except Exception:
            log.exception("broadcast stopped by an error", extra={"broadcast": broadcast_id})
        finally:
            if planning is not None:
                planning.cancel()  # a page cut short rolls back whole
            await asyncio.gather(*sending, return_exceptions=True)  # claimed: record them

    async def _plan(self, broadcast_id: int, kind: str, window: int | None) -> None:
        try:
            while not await plan_page(self._db, broadcast_id, kind, window):
                pass
        except InvalidPayload as exc:  # its view's filter no longer compiles
            await self._stop(broadcast_id, f"planning failed: {exc}")
        except Exception:
            log.exception("planning a broadcast failed", extra={"broadcast": broadcast_id})

    async def _stop(self, broadcast_id: int, why: str, status: str = "running") -> None:
        """Pause a broadcast that cannot go on, saying why (`show` prints it)."""
        async with self._db.write() as conn:
            stopped = await conn.execute(
                broadcasts.update()
                .where(broadcasts.c.id == broadcast_id, broadcasts.c.status == status)
                .values(status="paused", last_error=why)
            )
        if stopped.rowcount:
            log.warning("broadcast paused", extra={"broadcast": broadcast_id, "why": why})

    async def _send(self, b: Any, channel: Any, claim: Claim) -> None:
        ids = (claim.recipient_id, claim.message_id)
        hold = self._holds.get(b.channel_id, 0.0) - time.monotonic()
        try:
            if hold > 0:  # claimed before the platform asked us to slow down: queue it again
                raise RetryLater(hold, "the platform asked to slow down")
            with yielding():
                receipt = await channel.send(claim.outbound)
        except PermanentFailure as exc:
            blocks = claim.identity_id if isinstance(exc, RecipientBlocked) else None
            outcome = _Outcome(*ids, "failed", error=exc.reason, blocks=blocks)
        except RetryLater as exc:  # the platform said no: it has not got it
            after = exc.after if exc.after is not None else min(2.0**claim.attempts, 300.0)
            if exc.after is not None:
                self._holds[b.channel_id] = time.monotonic() + after
            if claim.attempts + 1 >= MAX_ATTEMPTS:
                why = f"gave up after {MAX_ATTEMPTS} tries: {exc}"
                outcome = _Outcome(*ids, "failed", error=why)
            else:
                outcome = _Outcome(*ids, "retry", error=str(exc)[:500], after=after)
            log.warning(
                "broadcast send refused for now",
                extra={"broadcast": b.id, "after": after, "error": str(exc)},
            )
        except (ChanCenterError, OSError, TimeoutError) as exc:
            # it may have left: sending again could make it twice
            outcome = _Outcome(*ids, "interrupted", error=f"{UNKNOWN}: {exc}"[:1000])
            log.warning(
                "broadcast send ended unknown", extra={"broadcast": b.id, "error": str(exc)}
            )
        else:
            outcome = _Outcome(
                claim.recipient_id, claim.message_id, "sent", external_id=receipt.external_id
            )
        await record(self._group, outcome)

    async def _write(self, conn: AsyncConnection, outcomes: list[_Outcome]) -> list[None]:
        at = now()
        done = [o for o in outcomes if o.status != "retry"]
        if done:
            await conn.execute(
                _RECIPIENT_DONE,
                [
                    {
                        "r_id": o.recipient_id,
                        "r_status": o.status,
                        "r_reason": o.error,
                        "r_sent_at": at if o.status == "sent" else None,
                    }
                    for o in done
                ],
            )
            await conn.execute(
                _MESSAGE_DONE,
                [
                    {
                        "m_id": o.message_id,
                        "m_status": "sent" if o.status == "sent" else "failed",
                        "m_external_id": o.external_id,
                        "m_error": o.error,
                    }
                    for o in done
                ],
            )
            if blocks := [o.blocks for o in done if o.blocks is not None]:
                await conn.execute(
                    identities.update()
                    .where(identities.c.id.in_(blocks))
                    .values(blocked=int(Reach.BLOCKED))
                )
        # queued again unless the broadcast was cancelled meanwhile
        cancelled = (
            sa.select(broadcasts.c.id)
            .where(broadcasts.c.id == _r.broadcast_id, broadcasts.c.status == "cancelled")
            .exists()
        )
        for o in outcomes:
            if o.status == "retry":
                await conn.execute(
                    broadcast_recipients.update()
                    .where(_r.id == o.recipient_id)
                    .where(_r.status == "sending", _r.claimed_by == self.name)
                    .values(
                        status=sa.case((cancelled, "cancelled"), else_="queued"),
                        claimed_by=None,
                        attempts=_r.attempts + 1,
                        reason=f"will retry: {o.error}",
                        next_attempt_at=at + timedelta(seconds=o.after),
                    )
                )
        return [None] * len(outcomes)

    async def _finish(self, broadcast_id: int) -> bool:
        """Complete the broadcast when nothing is left to send; True when it is over."""
        async with self._db.write() as conn:
            left = await conn.execute(
                sa.select(_r.id)
                .where(_r.broadcast_id == broadcast_id)
                .where(_r.status.in_(("queued", "sending")))
                .limit(1)
            )
            if left.first() is not None:
                return False
            done = (
                await conn.execute(
                    broadcasts.update()
                    .where(broadcasts.c.id == broadcast_id, broadcasts.c.status == "running")
                    .where(broadcasts.c.planned == 1)
                    .values(status="completed", finished_at=now())
                    .returning(broadcasts.c.space_id, broadcasts.c.name, broadcasts.c.channel_id)
                )
            ).first()
            if done is not None:
                counts = await conn.execute(
                    sa.select(_r.status, sa.func.count())
                    .where(_r.broadcast_id == broadcast_id)
                    .group_by(_r.status)
                )
                broadcast = {
                    "id": broadcast_id,
                    "name": done.name,
                    "channel_id": done.channel_id,
                    "recipients": {status: n for status, n in counts},
                }
                await emit(conn, done.space_id, "broadcast.completed", {"broadcast": broadcast})
        if done is not None:
            log.info("broadcast completed", extra={"broadcast": broadcast_id})
        return True

    async def _sweep(self) -> None:
        """Mark `interrupted` what dead processes left `sending` in partitions newly ours."""
        owned = self._owned()
        if owned is None:  # one process does everything: sweep once, at start
            if self._swept is not None:
                return
            where = sa.true()
        else:
            fresh = owned - (self._swept or set())
            if not fresh:
                self._swept = set(owned)  # a partition lost and taken again is swept again
                return
            where = only_owned(_r.id, lambda: fresh)
        unfinished = sa.select(broadcasts.c.id).where(broadcasts.c.status != "completed")
        async with self._db.write() as conn:
            dead = (
                (
                    await conn.execute(
                        broadcast_recipients.update()
                        .where(_r.broadcast_id.in_(unfinished))  # the index, not every row
                        .where(_r.status == "sending", where)
                        .where(sa.or_(_r.claimed_by.is_(None), _r.claimed_by != self.name))
                        .values(status="interrupted", reason=INTERRUPTED)
                        .returning(_r.message_id)
                    )
                )
                .scalars()
                .all()
            )
            if dead:
                await conn.execute(
                    messages.update()
                    .where(messages.c.id.in_([m for m in dead if m is not None]))
                    .where(messages.c.status == "pending")
                    .values(status="failed", error=INTERRUPTED)
                )
        self._swept = set(owned or ())  # only once it is committed
        if dead:
            log.warning("broadcast sends interrupted by a stop", extra={"recipients": len(dead)})

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self._group.close()


def _done(
    sending: set[asyncio.Task[None]], room_for: asyncio.Event, most: int, task: asyncio.Task[None]
) -> None:
    sending.discard(task)
    if len(sending) <= most:
        room_for.set()


RUNNER: web.AppKey[BroadcastRunner] = web.AppKey("broadcast_runner", BroadcastRunner)
