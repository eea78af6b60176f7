"""Drains `desk_outbox` into each space's Slack workspace, in order per conversation,
retrying with backoff: a Slack outage delays threads and messages, it never drops them.

A notice for a space whose desk was uninstalled waits (parked) until it is installed
again; one for a space with no desk at all is dropped (its handovers wait in ChanCenter).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.delivery.outbox import OutboxRelay
from bot.errors import RetryLater
from bot.pipeline.partitions import Owned, everything
from bot.storage.db import Database
from bot.storage.tables import conversations, desk_outbox
from integrations.slack.desks import PARKED, Desks

log = logging.getLogger(__name__)


def desk_relay(db: Database, desks: Desks, owned: Owned = everything) -> OutboxRelay:
    async def deliver(row: sa.Row) -> None:
        async with db.glance() as conn:
            space_id = (
                await conn.execute(
                    sa.select(conversations.c.space_id).where(
                        conversations.c.id == row.conversation_id
                    )
                )
            ).scalar()
        desk = desks.of(space_id) if space_id is not None else None
        if desk is None:
            if space_id is not None and desks.parked(space_id):
                raise RetryLater(PARKED.total_seconds(), "the space's Slack desk is uninstalled")
            log.debug("desk notice for a space without a desk dropped", extra={"kind": row.kind})
            return
        try:
            await desk.view.deliver(row.kind, row.conversation_id, row.message_id, row.note)
        except (TimeoutError, SlackApiError, SlackClientError, OSError) as exc:
            response = getattr(exc, "response", None)
            retry_after = None
            if response is not None and response.status_code == 429:
                retry_after = float(response.headers.get("Retry-After", 1))
            raise RetryLater(retry_after, f"{row.kind}: {exc}") from exc

    return OutboxRelay(db, desk_outbox, deliver, "desk notice", owned, desks.wake)
