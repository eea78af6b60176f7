"""Teams contacts through the whole hub (`channels.botframework`): handed over to the
Slack desk, where an agent's reply reaches them in Teams, and a broadcast to two of them,
each sent into their own conversation from the reference stored with them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.keys import DB
from bot.settings import Settings
from bot.storage.tables import messages
from tests.broadcasts.helpers import act, create, finished
from tests.channels.conftest import from_teams, pointed_at, teams_channel
from tests.conftest import eventually
from tests.fakes.botframework import FakeBotFramework
from tests.integrations.slack.conftest import INBOX, open_desk

MEGAN = "a:1personal-chat-with-megan-bowen"


def texts(bf: FakeBotFramework, conversation: str = MEGAN) -> list[str]:
    """What the contact reads: each activity's text, or its card's."""
    found = []
    for sent in bf.sent:
        if sent.conversation_id != conversation:
            continue
        activity = sent.activity
        cards = [a["content"].get("text", "") for a in activity.get("attachments") or ()]
        found.append(activity.get("text") or " ".join(cards))
    return found


async def test_a_teams_contact_is_handed_to_slack_and_the_agents_reply_reaches_teams(
    aiohttp_client: Any, settings: Settings, bf: FakeBotFramework
) -> None:
    async with open_desk(aiohttp_client, settings, **pointed_at(bf)) as desk:
        channel = await teams_channel(desk.hub)
        await desk.add_agent("U1", "Bea", "bea@example.com")
        assert (await from_teams(desk.hub, bf, channel, text="hi")).status == 200
        await bf.wait_for(1)
        await eventually(lambda: texts(bf) == ["Hi! I am the Dialogflow bot."])

        await from_teams(desk.hub, bf, channel, text="a human please")
        await eventually(lambda: any(m.channel == INBOX and m.blocks for m in desk.slack.messages))
        header = next(m for m in desk.slack.messages if m.blocks)
        assert "Megan Bowen" in header.text and "botframework" in header.text
        conversation_id = int(header.blocks[1]["block_id"].split(":")[1])

        await desk.click("claim", conversation_id, "U1")
        await eventually(lambda: "with an agent" in desk.slack.parent(header.ts).text)
        await desk.reply_in_thread(header.ts, "U1", "Hi Megan, *Bea* here!", ts="1800000000.1")
        await eventually(lambda: "**Bea**: Hi Megan, \\*Bea\\* here!" in texts(bf))
        # the contact's answer goes to the thread, not to the bot
        asked = len(desk.dialogflow.requests)
        await from_teams(desk.hub, bf, channel, text="thanks Bea")
        await eventually(lambda: any(m.text == "thanks Bea" for m in desk.slack.thread(header.ts)))
        assert len(desk.dialogflow.requests) == asked


async def test_a_broadcast_reaches_two_teams_contacts_in_their_own_conversations(
    bf_hub: Any, bf: FakeBotFramework
) -> None:
    app = bf_hub.server.app
    channel = await teams_channel(bf_hub)
    people = {"a:1megan": ("29:megan", "Megan Bowen"), "a:1alex": ("29:alex", "Alex Wilber")}
    for conversation, (user, name) in people.items():
        resp = await from_teams(
            bf_hub, bf, channel, text="hi", conversation_id=conversation, user_id=user,
            user_name=name,
        )  # fmt: skip
        assert resp.status == 200
    await bf.wait_for(2)  # both welcomed
    bf.sent.clear()

    broadcast = await create(app, channel.id, name="december")
    await act(app, broadcast, "start")
    assert (await finished(app, broadcast))["sent"] == 2
    assert sorted(texts(bf, c)[0] for c in people) == ["Hi Alex", "Hi Megan"]
    assert {s.conversation_id: s.activity["recipient"]["id"] for s in bf.sent} == {
        "a:1megan": "29:megan",
        "a:1alex": "29:alex",
    }
    async with app[DB].read() as conn:
        ids = (
            await conn.execute(
                sa.select(messages.c.external_id).where(messages.c.sender_type == "broadcast")
            )
        ).scalars()
        assert all(ids)  # each send recorded with the connector's id, for reactions
