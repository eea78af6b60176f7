"""The in-process work queue: database rows are the durable copy, asyncio does the work.

Each conversation is drained by one task at a time, in id order, so per-conversation
order is kept while different conversations run in parallel. The ingest says which
conversations got work, so nobody has to look for it; pending rows left by a crash
(or by a read that failed) are found by a scan on start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import sqlalchemy as sa

from bot.metrics import Metrics
from bot.pipeline.handling import ConversationState
from bot.pipeline.lines import Line, Lines
from bot.pipeline.worker import Ready, Worker, WorkItem, state_of, with_state
from bot.storage.db import Database
from bot.storage.tables import conversations, work_items

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
FETCH = 50  # a conversation's pending items read at once
SCAN = 1000  # pending conversations found by one scan


class WorkQueue(Protocol):
    """In-process (`LocalWorkQueue`) or shared by processes (`RedisWorkQueue`)."""

    async def announce(
        self, conversation_ids: Iterable[int], ready: Mapping[int, Ready] | None = None
    ) -> None: ...

    def notify(self) -> None: ...

    async def run(self) -> None: ...


class LocalWorkQueue:
    def __init__(
        self,
        db: Database,
        worker: Worker,
        metrics: Metrics,
        concurrency: int = 16,
        on_done: Callable[[], None] = lambda: None,
        on_dead: Callable[[int, str], Awaitable[None]] | None = None,
    ) -> None:
        self._db = db
        self._worker = worker
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._lines: Lines[WorkItem] = Lines()  # conversations being drained
        self._again: set[int] = set()  # announced while draining: drain once more
        self._running = False
        self._scan_again = False  # the last scan found more than it could take
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_done = on_done
        self._on_dead = on_dead

    def notify(self) -> None:
        """Look for work in the database (all pending conversations)."""
        self._wake.set()

    async def announce(
        self, conversation_ids: Iterable[int], ready: Mapping[int, Ready] | None = None
    ) -> None:
        """Work for these conversations was committed: drain them, starting from `ready`
        (the committed items and the state) where the ingest had them."""
        if self._running:  # `serve --no-work` ingests for another process to work
            for conversation_id in conversation_ids:
                self._start(conversation_id, (ready or {}).get(conversation_id))

    async def run(self) -> None:
        self._running = True
        self.notify()  # resume what a previous process left
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                try:
                    pending = await self._pending_conversations()
                except Exception:
                    log.exception("cannot read the work queue; trying again shortly")
                    await asyncio.sleep(1)
                    self.notify()
                    continue
                self._scan_again = len(pending) == SCAN
                for conversation_id in pending:
                    self._start(conversation_id)
        finally:
            self._running = False
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pending_conversations(self) -> list[int]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(work_items.c.conversation_id)
                .where(work_items.c.status == "pending")
                .group_by(work_items.c.conversation_id)
                .order_by(sa.func.min(work_items.c.id))
                .limit(SCAN)
            )
            return list(rows.scalars())

    def _start(self, conversation_id: int, ready: Ready | None = None) -> None:
        line = self._lines.get(conversation_id)
        if line is not None:  # draining: the new items join its line, or it looks again
            if ready is not None and line.holds_all_before(ready.after):
                line.take(ready.items)
            else:
                self._again.add(conversation_id)
            return
        line = self._lines.start(conversation_id)
        state = None
        # nothing owed before them (a drain that ended may have done it): no read
        if ready is not None and self._lines.clear_after(conversation_id, ready.after):
            line.take(ready.items)
            state = ready.state
        task = asyncio.create_task(self._drain(conversation_id, line, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(
        self, conversation_id: int, line: Line[WorkItem], state: ConversationState | None
    ) -> None:
        done = False
        try:
            await self.drain(conversation_id, line, state)
            done = True
        except Exception:
            log.exception("cannot drain a conversation; looking again shortly")
            await asyncio.sleep(1)
            self.notify()
        finally:
            self._lines.end(conversation_id, done)
            if conversation_id in self._again and self._running:
                self._again.discard(conversation_id)
                self._start(conversation_id)
            elif self._scan_again:
                self.notify()

    async def drain(
        self,
        conversation_id: int,
        line: Line[WorkItem] | None = None,
        state: ConversationState | None = None,
    ) -> None:
        """Handle the conversation's pending items in order: those in its line, else read.

        Items committed while it runs join the line or are announced again, so it reads
        once more only after a full page, not to find nothing.
        """
        if line is None:  # not `or`: an empty line is falsy, and the caller's must be used
            line = Line()
        async with self._slots:
            full = False
            if not len(line):
                state, full = await self._read(conversation_id, line)
            while (item := line.next()) is not None:
                state = await self._handle(item, state)
                if full and not len(line):
                    found, full = await self._read(conversation_id, line)
                    state = state or found

    async def _read(
        self, conversation_id: int, line: Line[WorkItem]
    ) -> tuple[ConversationState | None, bool]:
        """A page of the conversation's pending items into `line`: the conversation's
        state (read with them: no second query), and whether the page was full."""
        rows = await self._pending(conversation_id)
        line.take(WorkItem(r.item_id, conversation_id, r.payload, r.item_created_at) for r in rows)
        return (state_of(rows[0]) if rows else None), len(rows) == FETCH

    async def _pending(self, conversation_id: int) -> list[sa.Row[Any]]:
        """The conversation's next pending rows, each with the conversation's state."""
        query = with_state(
            sa.select(
                work_items.c.id.label("item_id"),
                work_items.c.payload,
                work_items.c.created_at.label("item_created_at"),
                conversations.c.id,
            ).join(conversations, conversations.c.id == work_items.c.conversation_id)
        )
        async with self._db.glance() as conn:
            rows = await conn.execute(
                query.where(work_items.c.conversation_id == conversation_id)
                .where(work_items.c.status == "pending")
                .order_by(work_items.c.id)
                .limit(FETCH)
            )
            return list(rows)

    async def _handle(
        self, item: WorkItem, state: ConversationState | None
    ) -> ConversationState | None:
        """Process one item, retrying with backoff; after MAX_ATTEMPTS it is set aside.

        The conversation waits meanwhile: its later messages must not overtake this one.
        """
        error = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                state = await self._worker.process(item, state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("work item failed", extra={"work_item": item.id, "attempt": attempt})
                error = f"{type(exc).__name__}: {exc}"[:1000]
                await self._record_failure(item, error, dead=attempt == MAX_ATTEMPTS)
                state = None
                if attempt < MAX_ATTEMPTS:
                    await asyncio.sleep(min(0.2 * 2**attempt, 30))
            else:
                self._on_done()
                return state
        self._metrics.dead_letters.inc()
        if self._on_dead is not None:
            await self._on_dead(item.id, error)
        return None

    async def _record_failure(self, item: WorkItem, error: str, *, dead: bool) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                work_items.update()
                .where(work_items.c.id == item.id)
                .values(
                    attempts=work_items.c.attempts + 1,
                    last_error=error,
                    status="dead" if dead else "pending",
                )
            )
