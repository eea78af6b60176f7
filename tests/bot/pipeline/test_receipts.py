"""Receipts and edits of stored messages (bot.pipeline.receipts): a status moves forward
only, an edit replaces the parts, and a receipt that beats the send record is kept."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp.web import Application

from bot.delivery import sender as sending
from bot.keys import CHANNELS, DB, DEFAULT_SPACE, METRICS
from bot.model import MessageEdited, Seen, Sender, StatusChanged, TextPart
from bot.pipeline.ingest import Ingestor
from bot.storage.tables import conversations, messages
from tests.bot.pipeline.test_ingest import msg
from tests.conftest import add_channel


async def test_edits_and_statuses(app: Application) -> None:
    channel = await add_channel(app, "echo")
    ingestor = Ingestor(app[DB])
    await ingestor.store(
        channel,
        app[DEFAULT_SPACE],
        [
            msg("m1", text="helo"),
            MessageEdited(
                external_id="m1", sender=Sender(external_id="u1"), parts=(TextPart(text="hello"),)
            ),
        ],
    )
    async with app[DB].write() as conn:
        conv = (await conn.execute(sa.select(conversations.c.id))).scalar_one()
        await conn.execute(
            messages.insert().values(
                space_id=app[DEFAULT_SPACE],
                conversation_id=conv,
                channel_id=channel,
                direction="out",
                external_id="o1",
                parts=[],
                status="sent",
            )
        )
    for status in ("read", "delivered"):  # a late "delivered" must not undo "read"
        await ingestor.store(
            channel, app[DEFAULT_SPACE], [StatusChanged(external_id="o1", status=status)]
        )
    async with app[DB].read() as conn:
        rows = dict(
            (await conn.execute(sa.select(messages.c.external_id, messages.c.status))).all()
        )
        parts = (
            await conn.execute(sa.select(messages.c.parts).where(messages.c.external_id == "m1"))
        ).scalar_one()
    assert rows == {"m1": "received", "o1": "read"}
    assert parts == [{"type": "text", "text": "hello"}]


async def test_a_receipt_that_beats_the_send_record_is_kept(app: Application) -> None:
    """The web chat's receipts name our id and can arrive before the sender commits."""
    channel = await add_channel(app, "echo")
    ingestor = Ingestor(app[DB])
    await ingestor.store(channel, app[DEFAULT_SPACE], [msg("m1", sender="ana")])
    await ingestor.store(channel, app[DEFAULT_SPACE], [msg("m2", sender="bo")])
    async with app[DB].write() as conn:
        conv = (
            await conn.execute(sa.select(conversations.c.id).order_by(conversations.c.id))
        ).scalar()
        reply = (
            await conn.execute(
                messages.insert()
                .values(
                    space_id=app[DEFAULT_SPACE],
                    conversation_id=conv,
                    channel_id=channel,
                    direction="out",
                    parts=[],
                    status="pending",  # pushed, not yet recorded
                )
                .returning(messages.c.id)
            )
        ).scalar_one()

    def seen(who: str) -> Seen:
        return Seen(sender=Sender(external_id=who), message_id=reply, status="read")

    stranger = await ingestor.store(channel, app[DEFAULT_SPACE], [seen("bo")])
    assert stranger.updated == 0  # not Bo's message
    assert (await ingestor.store(channel, app[DEFAULT_SPACE], [seen("ana")])).updated == 1
    sender = sending.Sender(app[DB], app[CHANNELS], app[METRICS])
    async with app[DB].write() as conn:  # the sender records the send afterwards
        await sender._write(conn, [sending._Outcome(0, reply, "sent", external_id="ana:out:1")])
    async with app[DB].read() as conn:
        status = (
            await conn.execute(sa.select(messages.c.status).where(messages.c.id == reply))
        ).scalar()
    assert status == "read"
