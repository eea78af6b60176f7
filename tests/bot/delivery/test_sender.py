"""Failures on the way out and in the worker: retried, never silently dropped.

Covers `bot.pipeline.worker`, `bot.clock`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.clock import db_datetime
from bot.errors import PermanentFailure, RecipientBlocked, RetryLater
from bot.keys import DB, PLUGINS, QUEUE, SENDER
from bot.model import SentReceipt
from bot.storage.tables import conversations, identities, messages, outbox, work_items
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import calls_to, count, eventually, held_handling
from tests.fakes.echo_channel import EchoChannel


async def test_retry_later_is_honoured_and_the_message_is_sent_afterwards(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    echo.failures.append(RetryLater(1.5, "429 too many requests"))
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))

    async def retried() -> sa.Row | None:
        async with app[DB].read() as conn:
            return (await conn.execute(sa.select(outbox).where(outbox.c.attempts == 1))).first()

    row = await eventually(retried)
    assert row.last_error == "429 too many requests"
    wait = (
        db_datetime(row.next_attempt_at) - datetime.now(UTC).replace(tzinfo=None)
    ).total_seconds()
    assert 0 < wait <= 1.5  # roomy: a loaded machine may take a while to look
    assert echo.sent == []
    await eventually(lambda: len(echo.sent) == 1, timeout=5)

    async def sent() -> bool:
        return await count(app, messages, messages.c.status == "sent") == 1

    await eventually(sent)
    assert await count(app, outbox) == 0


async def test_permanent_failure_marks_the_message_failed_with_the_reason(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    echo.failures.append(PermanentFailure("the contact blocked the bot"))
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))

    async def failed() -> sa.Row | None:
        async with app[DB].read() as conn:
            return (
                await conn.execute(sa.select(messages).where(messages.c.status == "failed"))
            ).first()

    row = await eventually(failed)
    assert row.error == "the contact blocked the bot"
    assert await count(app, outbox) == 0


async def test_a_failing_handler_is_retried_then_set_aside(
    client: TestClient, app: Application, echo: EchoChannel, monkeypatch
) -> None:
    import bot.pipeline.queue

    monkeypatch.setattr(bot.pipeline.queue, "MAX_ATTEMPTS", 2)
    calls = []

    async def broken(event, ctx) -> bool:
        calls.append(event.external_id)
        raise RuntimeError("handler bug")

    app[PLUGINS].handlers.insert(0, broken)
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))

    async def dead() -> sa.Row | None:
        async with app[DB].read() as conn:
            return (
                await conn.execute(sa.select(work_items).where(work_items.c.status == "dead"))
            ).first()

    row = await eventually(dead)
    assert row.attempts == 2 and "handler bug" in row.last_error
    assert calls == ["1", "1"]
    # the message itself is kept, and the dead letter is visible in /metrics
    assert await count(app, messages, messages.c.direction == "in") == 1
    metrics = await (await client.get("/metrics")).text()
    assert "chancenter_work_dead_letters_total 1.0" in metrics
    app[QUEUE].notify()


async def test_a_message_waiting_for_its_retry_is_not_overtaken(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    echo.failures.append(RetryLater(0.5, "429 too many requests"))
    # the welcome fails once; the answer to the second message must still come after it
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))
    await eventually(lambda: count(app, outbox, outbox.c.attempts == 1))
    await post(client, echo.id, body({"id": "2", "from": "u", "text": "pricing"}))
    await eventually(lambda: len(echo.sent) == 2, timeout=5)
    assert echo.sent[0].parts[0].text.startswith("Hi! I'm")
    assert echo.sent[1].parts[0].text.startswith("Starter is free")


async def test_a_message_waiting_behind_a_retry_does_not_keep_the_sender_busy(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    echo.failures.append(RetryLater(2.0, "429 too many requests"))
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))
    await eventually(lambda: count(app, outbox, outbox.c.attempts == 1))
    await post(client, echo.id, body({"id": "2", "from": "u", "text": "pricing"}))
    await eventually(lambda: count(app, outbox, outbox.c.attempts == 0))  # due, but behind
    rounds = calls_to(app[SENDER], "send_due")
    await asyncio.sleep(1.0)
    assert len(rounds) <= 3, f"{len(rounds)} rounds in a second while nothing could be sent"
    await eventually(lambda: len(echo.sent) == 2, timeout=5)


async def test_a_reply_committed_while_its_conversation_sends_joins_it_unlooked_for(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    """The worker hands the sender what it committed; behind a send in flight, in order."""
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))
    await eventually(lambda: len(echo.sent) == 1)
    await eventually(lambda: _empty(app))
    looks = calls_to(app[SENDER], "send_due")
    echo.hold = asyncio.Event()
    await post(client, echo.id, body({"id": "2", "from": "u", "text": "pricing"}))
    await eventually(lambda: echo.holding == 1)
    await post(client, echo.id, body({"id": "3", "from": "u", "text": "opening hours"}))

    async def queued() -> bool:
        return await count(app, outbox) == 2 and await count(app, work_items) == 0

    await eventually(queued)
    echo.hold.set()
    await eventually(lambda: len(echo.sent) == 3)
    assert echo.sent[1].parts[0].text.startswith("Starter is free")  # the answer to 2
    assert echo.sent[2].message_id > echo.sent[1].message_id  # then the answer to 3
    assert not echo.sent[2].parts[0].text.startswith("Starter is free")
    assert len(looks) == 0
    await eventually(lambda: _empty(app))


async def _empty(app: Application) -> bool:
    return await count(app, outbox) == 0


async def test_a_message_arriving_while_its_conversation_is_handled_is_handled_next(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    """The drain had read the conversation's rows before the second was committed."""
    handled, release = held_handling(app)
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))
    await eventually(lambda: handled == ["1"])
    await post(client, echo.id, body({"id": "2", "from": "u", "text": "pricing"}))
    release.set()
    await eventually(lambda: handled == ["1", "2"], timeout=3)
    await eventually(lambda: len(echo.sent) == 2, timeout=3)
    assert await count(app, work_items) == 0


async def test_a_conversation_taken_while_its_message_is_handled_is_handled_again(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    """An agent claims it meanwhile: the bot's answer is not written; the agent has it."""
    seen: list[str] = []
    release = asyncio.Event()

    async def slow(event, ctx) -> bool:
        seen.append(ctx.conversation.handler)
        await release.wait()
        return False

    app[PLUGINS].handlers.insert(0, slow)
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "pricing"}))
    await eventually(lambda: seen == ["bot"])
    async with app[DB].write() as conn:
        await conn.execute(conversations.update().values(handler="agent"))
    release.set()
    await eventually(lambda: seen == ["bot", "agent"], timeout=3)

    async def handled() -> bool:
        return await count(app, work_items) == 0

    await eventually(handled)
    assert await count(app, messages, messages.c.direction == "out") == 0
    assert echo.sent == []


async def test_a_send_the_platform_accepted_is_not_repeated_when_its_record_fails(
    client: TestClient, app: Application, echo: EchoChannel, monkeypatch
) -> None:
    """The platform answers an id already recorded (an IntegrityError on the unique
    (channel, external id)): the contact must still get the message once."""
    sends: list[int] = []

    async def same_id(outbound):
        sends.append(outbound.message_id)
        return SentReceipt(external_id="already-there")

    monkeypatch.setattr(echo, "send", same_id)
    await post(client, echo.id, body({"id": "already-there", "from": "u", "text": "hi"}))

    async def settled() -> bool:  # sent once (an empty outbox alone may be before the reply)
        return bool(sends) and await count(app, outbox) == 0

    await eventually(settled)
    await asyncio.sleep(0.5)  # a repeat would come within this
    assert len(sends) == len(set(sends)) == 1
    async with app[DB].read() as conn:
        row = (await conn.execute(sa.select(messages).where(messages.c.direction == "out"))).one()
    assert row.status == "sent" and row.external_id is None


async def test_a_contact_who_blocked_us_is_marked_and_sent_nothing_more(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    echo.failures.append(RecipientBlocked("Forbidden: bot was blocked by the user"))
    await post(client, echo.id, body({"id": "1", "from": "u", "text": "hi"}))

    async def blocked() -> bool:
        return await count(app, identities, identities.c.blocked == 1) == 1

    await eventually(blocked)
    await post(client, echo.id, body({"id": "2", "from": "u", "text": "pricing"}))

    async def failed() -> list[sa.Row]:
        async with app[DB].read() as conn:
            rows = (
                await conn.execute(sa.select(messages).where(messages.c.status == "failed"))
            ).all()
        return rows if len(rows) == 2 else []

    rows = await eventually(failed)
    assert "blocked" in rows[1].error
    assert echo.sent == []
    assert await count(app, outbox) == 0
