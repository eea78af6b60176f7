"""Group commit: many callers' writes share one transaction.

Whoever finds no commit running leads: it takes everything queued so far and
commits it at once; callers that arrive meanwhile queue up for the next commit.
Under load the statements per commit stay constant while the writes per commit
grow, which is what makes SQLite's single writer keep up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
WriteBatch = Callable[[AsyncConnection, list[T]], Awaitable[list[R]]]


class GroupCommitter(Generic[T, R]):
    def __init__(
        self, db: Database, write: WriteBatch[T, R], max_batch: int = 500, yielding: bool = False
    ) -> None:
        self._db = db
        self._yielding = yielding  # see `Database.write`
        self._write = write
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Return `write`'s result for `item` once it is committed; raise if it could not be."""
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        async with self._lock:
            if not done.done():  # nobody committed it while we waited: lead a batch
                # shielded: a caller that goes away must not abort the others' commit
                task = asyncio.ensure_future(self._take_and_commit())
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                await asyncio.shield(task)
        return await done

    async def close(self) -> None:
        """Wait for commits whose callers were cancelled (at shutdown), so none is cut off."""
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _take_and_commit(self) -> None:
        """Commit what is queued when the task starts, one turn of the loop after its
        leader: the callers woken in the same turn as the leader come along (taken at
        once, the leader went alone and its neighbours made a second commit)."""
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        await self._commit(batch)

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            async with self._db.write(self._yielding) as conn:
                results = await self._write(conn, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            # one bad item must not fail its neighbours: commit each on its own
            log.warning("batch commit failed; committing one by one", exc_info=True)
            for entry in batch:
                await self._commit([entry])
            return
        for (_, done), result in zip(batch, results, strict=True):
            done.set_result(result)
