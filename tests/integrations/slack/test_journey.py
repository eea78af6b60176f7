"""The journey: a Telegram contact, the Dialogflow bot, handover to Slack, and back to the bot."""

from __future__ import annotations

import sqlalchemy as sa

from bot.keys import DB
from bot.storage.tables import conversations, desk_outbox, messages
from tests.conftest import count, eventually
from tests.integrations.slack.conftest import INBOX, Desk


async def test_contact_bot_handover_agent_and_back(desk: Desk) -> None:
    bea = await desk.add_agent("U1", "Bea", "bea@example.com")

    # a contact says hi on Telegram; the Dialogflow agent welcomes them
    await desk.contact_says("hi")
    await eventually(lambda: len(desk.telegram_texts()) >= 1)
    assert desk.telegram_texts()[0] == "Hi! I am the Dialogflow bot."
    assert desk.dialogflow.requests[0].query_input.event.name == "WELCOME"
    session = desk.dialogflow.requests[0].session
    assert session.startswith("projects/acme-agent/agent/sessions/conversation-")

    # they ask for a human: Dialogflow's `handover` action; a thread opens in Slack
    await desk.contact_says("a human please")
    await eventually(lambda: any(m.channel == INBOX and m.blocks for m in desk.slack.messages))
    header = next(m for m in desk.slack.messages if m.blocks)
    assert "Ana" in header.text and "telegram" in header.text
    assert "waiting for an agent" in header.text
    buttons = [e.get("action_id") for e in header.blocks[1]["elements"]]
    assert buttons == ["claim", "assign_open", "back_to_bot", "close"]
    conversation_id = int(header.blocks[1]["block_id"].split(":")[1])
    await eventually(lambda: len(desk.slack.thread(header.ts)) == 1)
    transcript = desk.slack.thread(header.ts)[0].text
    assert "*Contact:*\n>a human please" in transcript
    assert "Connecting you to a person." in transcript
    # nobody is online: the away reply follows the bot's words, once
    await eventually(lambda: any("away right now" in t for t in desk.telegram_texts()))
    assert desk.telegram_texts()[-2:][0] == "Connecting you to a person."

    # while it waits the bot is silent; the contact's words go to the thread
    asked = len(desk.dialogflow.requests)
    await desk.contact_says("pricing?")
    await eventually(lambda: any(m.text == "pricing?" for m in desk.slack.thread(header.ts)))
    assert len(desk.dialogflow.requests) == asked

    # Bea claims it from Slack; the header says so
    await desk.click("claim", conversation_id, "U1")
    async with desk.app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(conversations).where(conversations.c.id == conversation_id)
            )
        ).one()
    assert (row.handler, row.assignee_id) == ("agent", bea)
    await eventually(lambda: "with an agent" in desk.slack.parent(header.ts).text)
    assert "Assignee: <@U1>" in desk.slack.parent(header.ts).text  # linked by her email

    # her reply in the thread reaches the contact on Telegram, with her name
    await desk.reply_in_thread(header.ts, "U1", "Hi Ana, Bea here!", ts="1800000000.000001")
    await eventually(lambda: "Bea: Hi Ana, Bea here!" in desk.telegram_texts())
    # Slack retries the same event: nothing is sent twice
    await desk.reply_in_thread(
        header.ts, "U1", "Hi Ana, Bea here!", ts="1800000000.000001", retry=1
    )
    # a note stays among agents
    await desk.reply_in_thread(header.ts, "U1", "note: VIP, be nice", ts="1800000000.000002")
    await eventually(lambda: _none_pending(desk))
    texts = desk.telegram_texts()
    assert texts.count("Bea: Hi Ana, Bea here!") == 1
    assert not any("VIP" in t for t in texts)

    # she closes it; the next message starts over with the bot
    await desk.click("close", conversation_id, "U1")
    await eventually(lambda: "closed" in desk.slack.parent(header.ts).text)
    assert len(desk.slack.parent(header.ts).blocks) == 1  # no buttons on a closed conversation
    await desk.contact_says("pricing")
    await eventually(lambda: "Plans start at 10 EUR." in desk.telegram_texts())
    async with desk.app[DB].read() as conn:
        handlers = (
            (await conn.execute(sa.select(conversations.c.handler).order_by(conversations.c.id)))
            .scalars()
            .all()
        )
    assert list(handlers) == ["agent", "bot"]


async def _none_pending(desk: Desk) -> bool:
    pending = await count(desk.app, messages, messages.c.status == "pending")
    return pending == 0 and await count(desk.app, desk_outbox) == 0
