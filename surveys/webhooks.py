"""A flow's `webhook` end action: the answers are POSTed as JSON to the survey's URL.

The request is written in the same commit as the flow's end and posted by a relay
afterwards (never while the conversation waits): a receiver that is down or answers
5xx, 408 or 429 gets it again with backoff; one that refuses it with another 4xx is
logged as an error and not asked again.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.delivery.outbox import OutboxRelay
from bot.errors import RetryLater
from bot.keys import WEBHOOKS
from bot.pipeline.handling import HandlerContext
from bot.pipeline.partitions import Owned, everything
from bot.storage.db import Database
from bot.storage.tables import flow_webhooks

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=10)
RETRIED = {408, 429}


def post_later(ctx: HandlerContext, url: str, body: dict[str, Any]) -> None:
    """Queue the POST in the transaction that ends the flow."""

    async def queue(conn: AsyncConnection) -> None:
        await conn.execute(
            flow_webhooks.insert().values(conversation_id=ctx.conversation.id, url=url, body=body)
        )

    ctx.write(queue)
    ctx.then(ctx.app[WEBHOOKS].notify)


def webhook_relay(
    db: Database, http: aiohttp.ClientSession, owned: Owned = everything
) -> OutboxRelay:
    async def deliver(row: sa.Row) -> None:
        try:
            async with http.post(row.url, json=row.body, timeout=TIMEOUT) as resp:
                status, retry_after = resp.status, resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(None, f"{row.url}: {exc!r}") from exc
        if status >= 500 or status in RETRIED:
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            raise RetryLater(wait, f"{row.url} answered {status}")
        if status >= 400:
            log.error(
                "flow webhook refused; not sent again",
                extra={"url": row.url, "status": status, "conversation": row.conversation_id},
            )

    return OutboxRelay(db, flow_webhooks, deliver, "flow webhook", owned)
