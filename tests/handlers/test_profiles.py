# ruff: noqa: F811 - the Graph fixture is imported by name, then requested as an argument
"""A Messenger contact's name, fetched before routing, is in the Slack thread that the
same message opens; a name an agent gave is never asked of Meta again.

Covers `handlers.profiles` (`tests/channels/test_messenger_profiles.py` covers the lookup).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.app import create_app
from bot.keys import CHANNELS, DB
from bot.settings import Settings
from bot.storage.tables import contacts
from channels.messenger import MessengerChannel
from tests.channels.conftest import graph, meta_channel, meta_hub, signed  # noqa: F401
from tests.channels.test_messenger import PAGE, PSID, channel, msg, page  # noqa: F401
from tests.channels.test_messenger_profiles import PETER, answered, asked, says
from tests.conftest import closed_within, eventually, single
from tests.fakes.graph import FakeGraph
from tests.fakes.slack import FakeSlack

INBOX = "CINBOX"


Desk = tuple[TestClient, FakeSlack, MessengerChannel]


@pytest.fixture
async def desk(aiohttp_client: Any, settings: Settings, graph: FakeGraph) -> AsyncIterator[Desk]:
    """A hub with the Slack desk (its inbox on the fake Slack) and a Messenger page."""
    slack = FakeSlack()
    server = TestServer(slack.app)
    await server.start_server()
    try:
        app = create_app(
            settings.model_copy(
                update={
                    "graph_api_base": graph.url,
                    "slack_api_base": str(server.make_url("/api/")),
                    "slack_bot_token": SecretStr("xoxb-test"),
                    "slack_signing_secret": SecretStr("slack-signing-secret"),
                    "slack_inbox_channel": INBOX,
                }
            )
        )
        hub = await aiohttp_client(app)
        channel = await meta_channel(hub, "messenger", page_id=PAGE, page_token="PAGE-TOKEN")
        assert isinstance(channel, MessengerChannel)
        yield hub, slack, channel
        await closed_within(hub, 15)
    finally:
        await server.close()


async def test_the_thread_the_first_message_opens_names_the_contact(
    desk: Desk, graph: FakeGraph
) -> None:
    hub, slack, channel = desk
    graph.users[PSID] = PETER
    # one message, one worker pass: the name is stored, then the handover opens a thread
    raw, headers = signed(page(msg("m1", text="human")))
    assert (await hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 200
    header = await eventually(lambda: next((m for m in slack.messages if m.blocks), None))
    assert header.channel == INBOX
    assert header.text.startswith("*Peter Chang* on messenger")
    assert len(asked(graph)) == 1


async def test_a_name_an_agent_gave_is_kept_and_meta_is_not_asked(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    app = meta_hub.server.app
    graph.users[PSID] = {"page": PAGE, "no_profile": True}
    await says(meta_hub, channel, "m1")
    await answered(graph, 1)
    async with app[DB].write() as conn:
        await conn.execute(contacts.update().values(name="Pete (VIP)"))
    # Meta would answer now, and the channel has forgotten its refusal: the name stops it
    graph.users[PSID] = PETER
    app[CHANNELS].forget(channel.id)
    await says(meta_hub, channel, "m2")
    await answered(graph, 2)
    assert len(asked(graph)) == 1
    assert await single(app, contacts.c.name) == "Pete (VIP)"
    assert await single(app, contacts.c.avatar_url) is None


async def test_a_name_given_while_meta_answers_is_not_overwritten(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    app = meta_hub.server.app
    graph.users[PSID] = PETER
    graph.stall = 1.0
    await says(meta_hub, channel, "m1")
    await eventually(lambda: asked(graph))  # the lookup is under way: an agent names them
    async with app[DB].write() as conn:
        await conn.execute(contacts.update().values(name="Pete (VIP)"))
    await answered(graph, 1)
    assert await single(app, contacts.c.name) == "Pete (VIP)"
