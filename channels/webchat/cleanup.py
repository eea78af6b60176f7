"""Sweeping uploads that no message references once their grace period is over.

A visitor uploads first and sends the message naming the file afterwards; a file
still unnamed after `UploadStore.keep_orphans` never will be (the widget sends at
once, and older files can no longer be attached), so it only costs disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bot.storage.db import Database
from bot.storage.tables import messages
from channels.webchat.uploads import StoredFile, UploadStore

log = logging.getLogger(__name__)

SWEEP_EVERY = 3600.0
CLOCK_SKEW = 3600.0
"""Messages are looked for from this long before the oldest candidate was uploaded:
the file's time is the disk's, the message's the database's."""
IDS_PER_QUERY = 50


async def sweep(store: UploadStore, db: Database) -> int:
    """Delete uploads older than the grace period that no message's parts name; returns
    how many went (leftovers without metadata included)."""
    cutoff = time.time() - store.keep_orphans
    candidates, leftovers = await asyncio.to_thread(store.older_than, cutoff)
    by_channel: dict[str, list[tuple[StoredFile, float]]] = defaultdict(list)
    for stored, uploaded in candidates:
        by_channel[stored.channel_id].append((stored, uploaded))
    orphans: list[str] = []
    for channel_id, files in by_channel.items():
        for start in range(0, len(files), IDS_PER_QUERY):
            chunk = files[start : start + IDS_PER_QUERY]
            named = await _named(db, channel_id, chunk)
            orphans += [f.file_id for f, _ in chunk if f.file_id not in named]
    await asyncio.to_thread(_delete, store, orphans, leftovers)
    return len(orphans) + len(leftovers)


async def _named(db: Database, channel_id: str, files: list[tuple[StoredFile, float]]) -> set[str]:
    """Which of `files` a message of their channel names (in any part, any direction)."""
    ids = [f.file_id for f, _ in files]
    since = min(uploaded for _, uploaded in files) - CLOCK_SKEW
    oldest = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)  # stored naive UTC
    text = sa.cast(messages.c.parts, sa.Text)
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(text)
            .where(messages.c.channel_id == channel_id)
            .where(messages.c.created_at >= oldest)
            .where(sa.or_(*(text.contains(file_id, autoescape=True) for file_id in ids)))
        )
        found = " ".join(row[0] for row in rows)
    return {file_id for file_id in ids if file_id in found}


def _delete(store: UploadStore, orphans: list[str], leftovers: list[Path]) -> None:
    for file_id in orphans:
        store.delete(file_id)
    for path in leftovers:
        path.unlink(missing_ok=True)


async def sweep_forever(store: UploadStore, db: Database, every: float = SWEEP_EVERY) -> None:
    """Sweep on start, then every `every` seconds; a failed sweep is logged and retried."""
    while True:
        try:
            deleted = await sweep(store, db)
        except Exception:
            log.exception("web-chat upload sweep failed")
        else:
            if deleted:
                log.info("web-chat orphan uploads deleted", extra={"files": deleted})
        await asyncio.sleep(every)
