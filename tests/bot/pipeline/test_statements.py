"""The statements one inbound message costs, from the webhook to the bot's reply recorded as
sent: a regression guard on the hot path's work (bench/e2e.py measures its time).

Counts what the database is sent on behalf of the message (the request, the conversation's
drain, the group commits, the sender), not what the hub's clocks poll meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application
from sqlalchemy import event

from bot.keys import DB
from bot.storage.tables import outbox, work_items
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel

# the steady state: a known contact writes in their open conversation, the bot answers
# (ingest: find the conversation, store the message and its work item; worker: check the
# handler, store the reply and its outbox row, touch the contact, drop the work item;
# sender: record the send, drop the outbox row)
MOST = 10
# the tasks that carry a message: its request, its conversation's drain, the commits they
# wait for, and the sender's loop and sends
HOT_PATH = {
    "RequestHandler.start",
    "LocalWorkQueue._drain",
    "GroupCommitter._take_and_commit",
    "Sender.run",
    "Sender._send_in_order",
}


@contextmanager
def statements(app: Application) -> Iterator[list[str]]:
    """The statements run on the hot path's tasks (transaction control aside)."""
    seen: list[str] = []

    def executed(*args: Any) -> None:
        statement = args[2]
        task = asyncio.current_task()
        where = task.get_coro().__qualname__ if task is not None else ""  # type: ignore[union-attr]
        if where in HOT_PATH and not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(f"{where}: {' '.join(statement.split())[:90]}")

    engines = [engine.sync_engine for engine in app[DB].engines]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", executed)


async def answered(client: TestClient, app: Application, echo: EchoChannel, n: int) -> None:
    """Message `m{n}` in, the bot's reply out and recorded."""
    before = len(echo.sent)
    text = "pricing" if n % 2 else "opening hours"
    assert (await post(client, echo.id, body({"id": f"m{n}", "from": "u1", "text": text}))).ok
    await eventually(lambda: len(echo.sent) > before)

    async def settled() -> bool:
        return await count(app, outbox) == 0 and await count(app, work_items) == 0

    await eventually(settled)


async def test_a_message_answered_by_the_bot_costs_at_most_ten_statements(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await answered(client, app, echo, 0)  # the first opens the conversation: more work
    messages = 5
    with statements(app) as seen:
        for n in range(1, messages + 1):
            await answered(client, app, echo, n)
    listing = "\n".join(seen)
    assert any("INSERT INTO messages" in s for s in seen), f"nothing counted:\n{listing}"
    # the sender looks for due rows every 5 s when idle: once, maybe, in the window
    assert len(seen) <= MOST * messages + 2, f"{len(seen) / messages} a message:\n{listing}"
