"""The webhook relay: events become deliveries, and deliveries reach their receivers.

At least once, in order per receiver and conversation (a delivery's `lane`): one waits
while an earlier one of its lane waits for a retry. Each carries the Standard Webhooks
headers: `webhook-id` (the same on every retry, so a receiver can drop a repeat),
`webhook-timestamp` and `webhook-signature` (HMAC-SHA256 with the subscription's `whsec_`
secret; a flow's or automation's own URL has none, so it gets no signature).

A 2xx is delivered. A 5xx, 408, 429, no answer within 10 s or a refused address is tried
again with backoff (or when `Retry-After` says) until the delivery is a day old;
any other answer fails it at once. A subscription with no success for a day is
disabled, what it is owed failed, and the reason kept for admins. Every attempt is kept
on its delivery (status, duration, the answer's first bytes).

The relay has its own HTTP client: no redirects, a resolver that refuses internal
addresses (`bot.delivery.guard`), at most 64 KiB of an answer read. It takes the time the
hot path leaves (`bot.delivery.spare`): small steps while the ingest works, its writes
yielding SQLite's writer; after a burst it catches up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from bot.clock import db_datetime, iso, now
from bot.delivery.guard import GuardedResolver
from bot.delivery.outbox import idle_time, wait_for_event
from bot.delivery.posting import KEPT, TIMEOUT, Attempt, post
from bot.delivery.spare import SpareTime
from bot.metrics import Metrics
from bot.pipeline.partitions import Owned, everything, only_owned
from bot.storage.db import Database
from bot.storage.group import GroupCommitter
from bot.storage.tables import webhook_deliveries, webhook_events, webhooks
from bot.workspace.crypto import Vault
from bot.workspace.events import GIVE_UP, envelope, hears, owed

log = logging.getLogger(__name__)

KEPT_ATTEMPTS = 30  # the log of a delivery keeps its last attempts
FIRST_RETRY = 5.0  # seconds; then x3 each time, at most MAX_BACKOFF
MAX_BACKOFF = 3600.0
# deliveries attempted, and events fanned out, a step; smaller while the hot path works
BATCH, BATCH_HOT = 200, 50
IDLE = 1.0  # seconds between looks when nothing woke the relay
CONCURRENCY = 32  # deliveries under way at once
FAN_OUT, FAN_OUT_HOT = 50, 5
KEEP = timedelta(days=7)  # finished deliveries are kept this long
USER_AGENT = "ChanCenter-Webhooks/1"

D, W = webhook_deliveries, webhooks
_waiting = D.alias("waiting")
_UPDATE = (
    D.update()
    .where(D.c.id == sa.bindparam("d_id"))
    .values(
        status=sa.bindparam("d_status"),
        attempts=sa.bindparam("d_attempts"),
        next_attempt_at=sa.bindparam("d_next"),
        last_error=sa.bindparam("d_error"),
        log=sa.bindparam("d_log", type_=D.c.log.type),
        finished_at=sa.bindparam("d_finished"),
    )
)


# a delivery with where it goes: its subscription's URL and secret, or its own URL
_DELIVERIES = sa.select(D, W.c.url.label("target"), W.c.secret, W.c.failing_since).outerjoin(
    W, W.c.id == D.c.webhook_id
)


def sealed_secret(vault: Vault, secret: str) -> str:
    return vault.seal({"secret": secret})


class WebhookRelay:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        metrics: Metrics,
        allow_private: bool = False,
        owned: Owned = everything,
        hot: Callable[[], bool] = lambda: False,
    ) -> None:
        self._db = db
        self._vault = vault
        self._metrics = metrics
        self._allow_private = allow_private
        self.owned = owned
        self._wake = asyncio.Event()
        # the relay's writes give way to the hot path's (SQLite has one writer)
        self._group: GroupCommitter[Attempt, None] = GroupCommitter(db, self._write, yielding=True)
        self._signers: dict[str, Webhook] = {}  # by sealed secret
        self._pruned = 0.0
        self._hot = hot
        self._spare = SpareTime(hot)
        self._slots = asyncio.Semaphore(CONCURRENCY)

    def notify(self) -> None:
        """Something was committed for the relay: look now, not at the next poll."""
        self._wake.set()

    def _client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self._allow_private))
        return aiohttp.ClientSession(
            connector=connector, timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}
        )

    async def run(self) -> None:
        async with self._client() as http:
            while True:
                try:
                    await self._spare.wait()
                    done = await self.fan_out() + await self.deliver_due(http)
                    await self._prune()
                except Exception:
                    log.exception("webhook round failed; trying again shortly")
                    done = 0
                if done == 0:
                    pending = (D.c.status == "pending", D.c.next_attempt_at > now())
                    wait = await idle_time(self._db, D.c.next_attempt_at, *pending, most=IDLE)
                    await wait_for_event(self._wake, wait)

    async def try_now(self, delivery_id: int) -> None:
        """Attempt one delivery at once, here (a subscription's test), and record it."""
        async with self._db.glance() as conn:
            row = (await conn.execute(_DELIVERIES.where(D.c.id == delivery_id))).one()
        async with self._client() as http:
            attempt = await self.attempt(http, row)
        async with self._db.write() as conn:
            await self._write(conn, [attempt])

    async def close(self) -> None:
        await self._group.close()

    async def fan_out(self) -> int:
        """Turn a batch of events into deliveries, one per subscription that hears it."""
        owned = only_owned(sa.func.coalesce(webhook_events.c.conversation_id, 0), self.owned)
        async with self._db.glance() as conn:  # most rounds find none: no write for them
            ids = (
                (
                    await conn.execute(
                        sa.select(webhook_events.c.id)
                        .where(owned)
                        .order_by(webhook_events.c.id)
                        .limit(FAN_OUT_HOT if self._hot() else FAN_OUT)
                    )
                )
                .scalars()
                .all()
            )
        if not ids:
            return 0
        async with self._db.write(yielding=True) as conn:
            # read again: another process may have taken some since (partitions move)
            events = (
                await conn.execute(
                    sa.select(webhook_events)
                    .where(webhook_events.c.id.in_(ids))
                    .order_by(webhook_events.c.id)
                )
            ).all()
            if not events:
                return 0
            subscriptions = (
                await conn.execute(
                    sa.select(W.c.id, W.c.space_id, W.c.events)
                    .where(W.c.space_id.in_({e.space_id for e in events}))
                    .where(W.c.enabled == 1)
                )
            ).all()
            at, rows = now(), []
            for event in events:
                heard = [
                    s.id
                    for s in subscriptions
                    if s.space_id == event.space_id and hears(s.events, event.type)
                ]
                if not heard:
                    continue
                body = envelope(event.type, db_datetime(event.created_at), event.data)
                # one event: one webhook-id and one body, whoever hears it
                same = owed(event.space_id, event.type, body, event.conversation_id, at)
                conversation = event.conversation_id
                rows += [
                    same
                    | {
                        "webhook_id": webhook_id,
                        "lane": None if conversation is None else f"w{webhook_id}:{conversation}",
                    }
                    for webhook_id in heard
                ]
            if rows:
                await conn.execute(D.insert(), rows)
            await conn.execute(
                webhook_events.delete().where(webhook_events.c.id.in_([e.id for e in events]))
            )
        return len(events)

    async def deliver_due(self, http: aiohttp.ClientSession) -> int:
        """Attempt a batch of due deliveries, each lane in order; returns how many."""
        at = now()
        behind = (
            sa.select(_waiting.c.id)
            .where(_waiting.c.lane == D.c.lane)
            .where(_waiting.c.id < D.c.id)
            .where(_waiting.c.status == "pending")
            .where(_waiting.c.next_attempt_at > at)
        )
        async with self._db.glance() as conn:
            rows = (
                await conn.execute(
                    _DELIVERIES.where(D.c.status == "pending")
                    .where(D.c.next_attempt_at <= at)
                    .where(sa.or_(D.c.webhook_id.is_(None), W.c.enabled == 1))
                    .where(~behind.exists())
                    .where(only_owned(sa.func.coalesce(D.c.conversation_id, 0), self.owned))
                    .order_by(D.c.id)
                    .limit(BATCH_HOT if self._hot() else BATCH)
                )
            ).all()
        lanes: dict[Any, list[Any]] = defaultdict(list)
        for row in rows:
            lanes[row.lane if row.lane is not None else ("alone", row.id)].append(row)
        await asyncio.gather(*(self._in_order(http, lane) for lane in lanes.values()))
        return len(rows)

    async def _in_order(self, http: aiohttp.ClientSession, rows: list[Any]) -> None:
        for row in rows:
            async with self._slots:
                attempt = await self.attempt(http, row)
            await self._group.submit(attempt)
            if not attempt.delivered and attempt.retried:
                return  # the lane's later deliveries wait for this one

    async def attempt(self, http: aiohttp.ClientSession, row: Any) -> Attempt:
        url = row.target or row.url
        body = json.dumps(row.body, separators=(",", ":"), ensure_ascii=False)
        sent_at = now()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": row.message_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if row.secret:
            headers["webhook-signature"] = self._signer(row.secret).sign(
                row.message_id, sent_at, body
            )
        return await post(http, row, url, body, headers, self._allow_private)

    def _signer(self, sealed: str) -> Webhook:
        signer = self._signers.get(sealed)
        if signer is None:
            signer = Webhook(self._vault.open(sealed)["secret"])
            self._signers[sealed] = signer
        return signer

    async def _write(self, conn: AsyncConnection, attempts: list[Attempt]) -> list[None]:
        """Record attempts: each delivery's state and log, and its subscription's health."""
        at = now()
        updates = []
        worked: set[int] = set()  # subscriptions with a success in this batch
        recovered: set[int] = set()  # ... of which were failing
        failed: dict[int, str] = {}
        for a in attempts:
            row = a.delivery
            entry = {
                "at": iso(at),
                "status": a.status,
                "ms": round(a.ms, 1),
                "error": a.error,
                "response": a.response,
            }
            delay = a.retry_after  # what the receiver asked for, else our backoff
            if delay is None:
                delay = min(FIRST_RETRY * 3.0**row.attempts, MAX_BACKOFF)
            retry_at = at + timedelta(seconds=delay)
            if a.delivered:
                status, outcome = "delivered", "delivered"
            elif a.retried and retry_at < db_datetime(row.give_up_at):
                status, outcome = "pending", "retry"
            else:
                status, outcome = "failed", "failed"
            self._metrics.webhook_attempts.labels(outcome=outcome).inc()
            if row.webhook_id is not None and a.delivered:
                worked.add(row.webhook_id)
                if row.failing_since is not None:
                    recovered.add(row.webhook_id)
            elif row.webhook_id is not None:
                failed[row.webhook_id] = f"{row.message_id}: {a.reason}"
            if not a.delivered:
                log.warning(
                    "webhook not delivered",
                    extra={
                        "delivery": row.id,
                        "webhook": row.webhook_id,
                        "attempt": row.attempts + 1,
                        "outcome": outcome,
                        "error": a.reason[:200],
                    },
                )
            updates.append(
                {
                    "d_id": row.id,
                    "d_status": status,
                    "d_attempts": row.attempts + 1,
                    "d_next": retry_at if status == "pending" else row.next_attempt_at,
                    "d_error": None if a.delivered else a.reason[:KEPT],
                    "d_log": [*row.log, entry][-KEPT_ATTEMPTS:],
                    "d_finished": None if status == "pending" else at,
                }
            )
        await conn.execute(_UPDATE, updates)
        if recovered:
            await conn.execute(W.update().where(W.c.id.in_(recovered)).values(failing_since=None))
        failing = {k: v for k, v in failed.items() if k not in worked}
        if failing:
            await _failing(conn, failing, at)
        return [None] * len(attempts)

    async def _prune(self) -> None:
        """Once an hour, forget deliveries finished more than `KEEP` ago."""
        if time.monotonic() - self._pruned < 3600:
            return
        self._pruned = time.monotonic()
        async with self._db.write(yielding=True) as conn:
            await conn.execute(
                D.delete().where(D.c.status != "pending").where(D.c.finished_at < now() - KEEP)
            )


async def _failing(conn: AsyncConnection, failed: dict[int, str], at: datetime) -> None:
    """Note when each subscription began failing; disable those failing for a day, and
    fail what they are owed (an admin may retry it once the receiver works)."""
    await conn.execute(
        W.update()
        .where(W.c.id.in_(failed))
        .where(W.c.failing_since.is_(None))
        .values(failing_since=at)
    )
    gone = (
        await conn.execute(
            sa.select(W.c.id, W.c.failing_since)
            .where(W.c.id.in_(failed))
            .where(W.c.enabled == 1)
            .where(W.c.failing_since <= at - GIVE_UP)
        )
    ).all()
    for webhook_id, since in gone:
        reason = (
            f"disabled at {at.isoformat(timespec='seconds')}: no delivery succeeded since "
            f"{db_datetime(since).isoformat(timespec='seconds')}; last: {failed[webhook_id]}"
        )
        log.error("webhook disabled", extra={"webhook": webhook_id, "reason": reason})
        await conn.execute(
            W.update()
            .where(W.c.id == webhook_id)
            .values(enabled=0, disabled_reason=reason[:1000], updated_at=at)
        )
        await conn.execute(
            D.update()
            .where(D.c.webhook_id == webhook_id)
            .where(D.c.status == "pending")
            .values(status="failed", finished_at=at, last_error="the subscription was disabled")
        )
