"""Drains `desk_outbox` into Slack, in order per conversation, retrying with backoff:
a Slack outage delays threads and messages, it never drops them."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.delivery.outbox import OutboxRelay
from bot.errors import RetryLater
from bot.pipeline.partitions import Owned, everything
from bot.storage.db import Database
from bot.storage.tables import desk_outbox
from integrations.slack.desk import SlackDesk


def desk_relay(
    db: Database, desk: SlackDesk, wake: asyncio.Event, owned: Owned = everything
) -> OutboxRelay:
    async def deliver(row: sa.Row) -> None:
        try:
            await desk.deliver(row.kind, row.conversation_id, row.message_id, row.note)
        except (TimeoutError, SlackApiError, SlackClientError, OSError) as exc:
            response = getattr(exc, "response", None)
            retry_after = None
            if response is not None and response.status_code == 429:
                retry_after = float(response.headers.get("Retry-After", 1))
            raise RetryLater(retry_after, f"{row.kind}: {exc}") from exc

    return OutboxRelay(db, desk_outbox, deliver, "desk notice", owned, wake)
