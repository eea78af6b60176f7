"""The work queue shared by several processes, on Redis Streams.

The database rows (`work_items`) stay the durable copy; Redis says which
conversation has work, and who does it:

- `web` processes commit a message, then `XADD` its conversation id to one of
  `PARTITIONS` streams (`cc:work:<n>`, n = conversation id mod PARTITIONS).
- A `worker` holds a lease on a partition (`SET NX PX`, renewed while alive) and
  is its only reader: it reads with `XREADGROUP` (a count at a time), drains each
  named conversation from the database in id order, then `XACK`s. One reader per
  partition and one partition per conversation keep per-conversation order.
- A worker that dies stops renewing; after `LEASE_MS` another takes the partition,
  first reclaiming the dead one's unacknowledged entries with `XAUTOCLAIM`. Effects
  are committed with the work item's removal and deduplicated, so a message handled
  twice is answered once.
- An announcement lost with a web process that died between commit and `XADD` is
  found by the sweep, which re-announces rows left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from bot.clock import now
from bot.metrics import Metrics
from bot.pipeline.partitions import PARTITIONS, partition_of
from bot.pipeline.queue import LocalWorkQueue
from bot.pipeline.worker import Ready, Worker
from bot.storage import redis_keys
from bot.storage.db import Database
from bot.storage.tables import work_items

log = logging.getLogger(__name__)

GROUP = "workers"
LEASE_MS = 10_000
BATCH = 100
SWEEP_EVERY = 15.0
SWEEP_AGE = timedelta(seconds=30)
DEAD = redis_keys.DEAD_LETTERS

# renew a lease only if it is still ours
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


stream = redis_keys.work_stream


class RedisWorkQueue:
    def __init__(
        self,
        redis: Redis,
        db: Database,
        worker: Worker,
        metrics: Metrics,
        concurrency: int = 16,
        on_done: Callable[[], None] = lambda: None,
    ) -> None:
        self._redis = redis
        self._db = db
        self._metrics = metrics
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        # draining one conversation from the database: the in-process queue's own loop
        self._local = LocalWorkQueue(db, worker, metrics, concurrency, on_done, self._dead)
        self._owned: dict[int, asyncio.Task[None]] = {}
        self._renew = redis.register_script(RENEW)

    def owned(self) -> set[int]:
        """The partitions this worker serves now (its sender sends only for them)."""
        return set(self._owned)

    async def announce(
        self, conversation_ids: Iterable[int], ready: Mapping[int, Ready] | None = None
    ) -> None:
        """Called by web processes after the commit (one round trip for the batch); the
        worker that owns the partition reads the items (`ready` is for one process)."""
        ids = sorted(set(conversation_ids))
        if not ids:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for conversation_id in ids:
                    pipe.xadd(stream(partition_of(conversation_id)), {"c": conversation_id})
                await pipe.execute()
        except RedisError as exc:
            # the rows are committed: the sweep announces them once Redis is back
            log.warning("could not announce work; the sweep will", extra={"error": str(exc)})

    def notify(self) -> None:
        """In-process wake-ups are meaningless here: other processes do the work."""

    async def run(self) -> None:
        """Own as many partitions as we can get, keep their leases, drain them."""
        await self._create_groups()
        sweeper = asyncio.create_task(self._sweep_forever())
        try:
            while True:
                try:
                    await self._keep_leases()
                except RedisError as exc:
                    log.warning("Redis unreachable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(LEASE_MS / 3000)
        finally:
            sweeper.cancel()
            for task in self._owned.values():
                task.cancel()
            await asyncio.gather(sweeper, *self._owned.values(), return_exceptions=True)
            await self._release()

    async def _create_groups(self) -> None:
        while True:
            try:
                for partition in range(PARTITIONS):
                    try:
                        await self._redis.xgroup_create(
                            stream(partition), GROUP, id="0", mkstream=True
                        )
                    except ResponseError as exc:
                        if "BUSYGROUP" not in str(exc):
                            raise
                return
            except RedisError as exc:
                log.warning("Redis unreachable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(1)

    async def _keep_leases(self) -> None:
        for partition, task in list(self._owned.items()):
            renewed = await self._renew(keys=[_lease(partition)], args=[self.name, LEASE_MS])
            if not renewed or task.done():
                log.warning("lost a partition", extra={"partition": partition})
                task.cancel()
                del self._owned[partition]
        for partition in range(PARTITIONS):
            if partition in self._owned:
                continue
            if await self._redis.set(_lease(partition), self.name, nx=True, px=LEASE_MS):
                log.info("took a partition", extra={"partition": partition, "worker": self.name})
                self._owned[partition] = asyncio.create_task(self._consume(partition))

    async def _release(self) -> None:
        try:
            for partition in list(self._owned):
                if await self._redis.get(_lease(partition)) == self.name.encode():
                    await self._redis.delete(_lease(partition))
        except RedisError:
            pass

    async def _consume(self, partition: int) -> None:
        key = stream(partition)
        # what a dead owner read and never acknowledged comes first
        start = "0-0"
        while True:
            start, claimed, _ = await self._redis.xautoclaim(
                key, GROUP, self.name, min_idle_time=0, start_id=start, count=BATCH
            )
            await self._handle(key, claimed)
            if start in (b"0-0", "0-0"):
                break
        while True:
            try:
                answer = await self._redis.xreadgroup(
                    GROUP, self.name, {key: ">"}, count=BATCH, block=1000
                )
            except RedisError as exc:
                log.warning("Redis unreachable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(1)
                continue
            for _, entries in answer:
                await self._handle(key, entries)

    async def _handle(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Drain each named conversation (in entry order), then acknowledge the entries."""
        if not entries:
            return
        seen: list[int] = []
        for _, fields in entries:
            conversation_id = int(fields[b"c"])
            if conversation_id not in seen:
                seen.append(conversation_id)
        for conversation_id in seen:
            await self._local.drain(conversation_id)
        await self._redis.xack(key, GROUP, *[entry_id for entry_id, _ in entries])

    async def _dead(self, item_id: int, error: str) -> None:
        """A work item that kept failing: also listed on a dead-letter stream."""
        with contextlib.suppress(RedisError):
            await self._redis.xadd(DEAD, {"work_item": item_id, "error": error[:500]})

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            try:
                await self.sweep()
            except (RedisError, sa.exc.SQLAlchemyError) as exc:
                log.warning("sweep failed", extra={"error": str(exc)})

    async def sweep(self) -> int:
        """Announce again the conversations whose rows have waited too long."""
        async with self._db.read() as conn:
            stale = list(
                (
                    await conn.execute(
                        sa.select(work_items.c.conversation_id)
                        .where(work_items.c.status == "pending")
                        .where(work_items.c.created_at < now() - SWEEP_AGE)
                        .group_by(work_items.c.conversation_id)
                        .limit(1000)
                    )
                ).scalars()
            )
        await self.announce(stale)
        return len(stale)


_lease = redis_keys.lease
