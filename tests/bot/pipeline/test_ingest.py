"""Group commit: concurrent requests share commits, and one bad request fails alone.

Covers `bot.storage.group`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from aiohttp.web import Application

from bot.app import create_app
from bot.keys import DB, DEFAULT_SPACE
from bot.model import MessageReceived, Sender, TextPart
from bot.pipeline.ingest import Ingestor
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.tables import contacts, conversations, identities, messages, work_items
from tests.conftest import add_channel, count


def msg(external_id: str, sender: str = "u1", text: str = "hi") -> MessageReceived:
    return MessageReceived(
        external_id=external_id, sender=Sender(external_id=sender), parts=(TextPart(text=text),)
    )


async def test_concurrent_requests_are_committed_together_and_answered_separately(
    aiohttp_client: Any, settings: Settings, plugins: Plugins
) -> None:
    # no worker: it would handle (and delete) the work items this test reads back
    client = await aiohttp_client(create_app(settings.model_copy(update={"work": False}), plugins))
    app = client.server.app
    channel = await add_channel(app, "echo")
    ingestor = Ingestor(app[DB])
    commits = 0
    write = app[DB].write

    def counting_write(yielding: bool = False):
        nonlocal commits
        commits += 1
        return write(yielding)

    app[DB].write = counting_write  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(
            *(
                ingestor.store(channel, app[DEFAULT_SPACE], [msg(f"m{n}", f"u{n % 5}")])
                for n in range(40)
            )
        )
    finally:
        app[DB].write = write  # type: ignore[method-assign]
    assert [r.queued for r in results] == [1] * 40
    assert len({r.message_ids[0] for r in results}) == 40
    assert commits < 10, f"{commits} commits for 40 concurrent requests"
    assert await count(app, contacts) == 5
    assert await count(app, conversations) == 5
    assert await count(app, work_items) == 40
    # one conversation per sender, and only its first message opened it
    async with app[DB].read() as conn:
        opened = [
            r.payload["opened"]
            for r in (await conn.execute(sa.select(work_items).order_by(work_items.c.id))).all()
        ]
    assert opened.count(True) == 5


async def test_newcomers_arriving_together_each_get_their_own_contact(app: Application) -> None:
    """New senders are created in bulk; each message still lands with its own sender."""
    channel = await add_channel(app, "echo")
    ingestor = Ingestor(app[DB])
    newcomers = [
        MessageReceived(
            external_id=f"m{n}",
            sender=Sender(external_id=f"visitor-{n}", name=f"Visitor {n}"),
            parts=(TextPart(text=f"from visitor-{n}"),),
        )
        for n in range(30)
    ]
    await asyncio.gather(
        *(ingestor.store(channel, app[DEFAULT_SPACE], [m]) for m in reversed(newcomers))
    )
    async with app[DB].read() as conn:
        rows = (
            await conn.execute(
                sa.select(messages.c.parts, identities.c.external_id, contacts.c.name)
                .join(conversations, conversations.c.id == messages.c.conversation_id)
                .join(identities, identities.c.id == conversations.c.identity_id)
                .join(contacts, contacts.c.id == conversations.c.contact_id)
                .where(identities.c.contact_id == contacts.c.id)
            )
        ).all()
    assert len(rows) == 30
    for row in rows:
        assert row.parts[0]["text"] == f"from {row.external_id}"
        assert row.name == "Visitor " + row.external_id.removeprefix("visitor-")


async def test_duplicates_in_one_batch_and_across_batches(app: Application) -> None:
    channel = await add_channel(app, "echo")
    ingestor = Ingestor(app[DB])
    first = await ingestor.store(channel, app[DEFAULT_SPACE], [msg("a"), msg("a"), msg("b")])
    assert first.queued == 2 and first.duplicates == 1
    again = await ingestor.store(channel, app[DEFAULT_SPACE], [msg("b")])
    assert again.queued == 0 and again.duplicates == 1


async def test_a_failing_request_does_not_fail_its_neighbours(app: Application) -> None:
    channel = await add_channel(app, "echo")
    ingestor = Ingestor(app[DB])
    good = [ingestor.store(channel, app[DEFAULT_SPACE], [msg(f"ok{n}")]) for n in range(3)]
    # a channel id that does not exist violates the foreign key: this request must fail alone
    bad = ingestor.store("no-such-channel", app[DEFAULT_SPACE], [msg("bad")])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert [r.queued for r in results[:3]] == [1, 1, 1]
    assert isinstance(results[3], Exception)
    assert await count(app, messages) == 3
