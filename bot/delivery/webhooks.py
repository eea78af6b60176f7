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
addresses (`bot.delivery.guard`), at most 64 KiB of an answer read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from bot.clock import db_datetime, iso, now
from bot.delivery.guard import GuardedResolver, Refused, check_literal
from bot.delivery.outbox import idle_time, wait_for_event
from bot.metrics import Metrics
from bot.pipeline.partitions import Owned, everything, only_owned
from bot.storage.db import Database
from bot.storage.group import GroupCommitter
from bot.storage.tables import webhook_deliveries, webhook_events, webhooks
from bot.workspace.crypto import Vault
from bot.workspace.events import GIVE_UP, hears, message_id

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_RESPONSE = 64 * 1024  # read of an answer, at most
KEPT = 500  # characters of an answer kept in the log
KEPT_ATTEMPTS = 30  # the log of a delivery keeps its last attempts
RETRIED = frozenset({408, 429})
FIRST_RETRY = 5.0  # seconds; then x3 each time, at most MAX_BACKOFF
MAX_BACKOFF = 3600.0
BATCH = 200
IDLE = 1.0  # seconds between looks when nothing woke the relay
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
_DELIVERIES = sa.select(D, W.c.url.label("target"), W.c.secret).outerjoin(
    W, W.c.id == D.c.webhook_id
)


def sealed_secret(vault: Vault, secret: str) -> str:
    return vault.seal({"secret": secret})


@dataclass(frozen=True)
class Attempt:
    """One POST and what came of it."""

    delivery: Any  # the row read by `due`
    status: int | None  # none: no answer (refused, unreachable, timed out)
    ms: float
    error: str | None = None
    response: str | None = None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retried(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in RETRIED

    @property
    def reason(self) -> str:
        if self.status is None:
            return self.error or "no answer"
        return f"answered {self.status}"


class WebhookRelay:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        metrics: Metrics,
        allow_private: bool = False,
        owned: Owned = everything,
    ) -> None:
        self._db = db
        self._vault = vault
        self._metrics = metrics
        self._allow_private = allow_private
        self.owned = owned
        self._wake = asyncio.Event()
        self._group: GroupCommitter[Attempt, None] = GroupCommitter(db, self._write)
        self._signers: dict[str, Webhook] = {}  # by sealed secret
        self._pruned = 0.0

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
                        .limit(BATCH)
                    )
                )
                .scalars()
                .all()
            )
        if not ids:
            return 0
        async with self._db.write() as conn:
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
            at = now()
            rows = [
                {
                    "space_id": event.space_id,
                    "webhook_id": subscription.id,
                    "message_id": event_id,
                    "type": event.type,
                    "conversation_id": event.conversation_id,
                    "lane": None
                    if event.conversation_id is None
                    else f"w{subscription.id}:{event.conversation_id}",
                    "body": {
                        "type": event.type,
                        "timestamp": iso(db_datetime(event.created_at)),
                        "data": event.data,
                    },
                    "log": [],
                    "next_attempt_at": at,
                    "give_up_at": at + GIVE_UP,
                    "created_at": at,
                }
                for event in events
                for event_id in (message_id(),)
                for subscription in subscriptions
                if subscription.space_id == event.space_id
                and hears(subscription.events, event.type)
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
                    .limit(BATCH)
                )
            ).all()
        lanes: dict[Any, list[Any]] = defaultdict(list)
        for row in rows:
            lanes[row.lane if row.lane is not None else ("alone", row.id)].append(row)
        await asyncio.gather(*(self._in_order(http, lane) for lane in lanes.values()))
        return len(rows)

    async def _in_order(self, http: aiohttp.ClientSession, rows: list[Any]) -> None:
        for row in rows:
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
        started = time.perf_counter()

        def took() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            check_literal(url, self._allow_private)
            async with http.post(
                url, data=body.encode(), headers=headers, allow_redirects=False
            ) as resp:
                first = await _read_at_most(resp.content, MAX_RESPONSE)
                retry_after = _seconds(resp.headers.get("Retry-After"), sent_at)
                answer = first[:KEPT].decode(errors="replace")
                return Attempt(row, resp.status, took(), None, answer, retry_after)
        except Refused as exc:
            return Attempt(row, None, took(), f"refused: {exc}")
        except TimeoutError:
            return Attempt(row, None, took(), "no answer within 10 s")
        except (aiohttp.ClientError, OSError) as exc:
            return Attempt(row, None, took(), f"{type(exc).__name__}: {exc}"[:KEPT])

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
        worked: set[int] = set()
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
            if row.webhook_id is not None:
                if a.delivered:
                    worked.add(row.webhook_id)
                else:
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
        if worked:
            await conn.execute(
                W.update()
                .where(W.c.id.in_(worked))
                .where(W.c.failing_since.is_not(None))
                .values(failing_since=None)
            )
        failing = {k: v for k, v in failed.items() if k not in worked}
        if failing:
            await _failing(conn, failing, at)
        return [None] * len(attempts)

    async def _prune(self) -> None:
        """Once an hour, forget deliveries finished more than `KEEP` ago."""
        if time.monotonic() - self._pruned < 3600:
            return
        self._pruned = time.monotonic()
        async with self._db.write() as conn:
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


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _seconds(retry_after: str | None, at: datetime) -> float | None:
    """`Retry-After` as seconds from `at` (it is seconds or an HTTP date); at most a day."""
    if not retry_after:
        return None
    if retry_after.strip().isdigit():
        seconds = float(retry_after)
    else:
        try:
            seconds = (parsedate_to_datetime(retry_after) - at).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), GIVE_UP.total_seconds())
