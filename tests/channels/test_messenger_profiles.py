# ruff: noqa: F811 - the Messenger fixtures are imported by name, then requested as arguments
"""Messenger contacts get their name from the User Profile API, through the real webhook
path and the fake Graph API: once, and never at the cost of a message.

Covers `MessengerChannel.profile` and `MetaChannel.peek`; `handlers.profiles` has its own.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.keys import CHANNELS, DB
from bot.storage.tables import contacts, identities
from channels.messenger import PROFILE_FIELDS, MessengerChannel, Recent
from tests.channels.conftest import signed
from tests.channels.test_messenger import PAGE, PSID, channel, msg, page  # noqa: F401
from tests.conftest import eventually
from tests.fakes.graph import FakeGraph

PICTURE = "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=2002&ext=1"
PETER = {"page": PAGE, "first_name": "Peter", "last_name": "Chang", "profile_pic": PICTURE}


async def says(hub: TestClient, channel: MessengerChannel, mid: str, sender: str = PSID) -> None:
    item = msg(mid, text="hello")
    item["sender"] = {"id": sender}
    raw, headers = signed(page(item))
    assert (await hub.post(f"/webhooks/{channel.id}", data=raw, headers=headers)).status == 200


async def answered(graph: FakeGraph, n: int, to: str = PSID) -> None:
    """The bot's reply to the `n`th message reached the contact: the message was handled."""
    await eventually(lambda: len([b for _, b in graph.sent if b["recipient"]["id"] == to]) >= n)


def asked(graph: FakeGraph, psid: str = PSID) -> list[dict[str, str]]:
    return [query for path, query in graph.reads if path == f"/{psid}"]


async def contact(hub: TestClient, psid: str = PSID) -> Any:
    async with hub.server.app[DB].read() as conn:
        return (
            await conn.execute(
                sa.select(contacts.c.name, contacts.c.avatar_url)
                .join(identities, identities.c.contact_id == contacts.c.id)
                .where(identities.c.external_id == psid)
            )
        ).one()


async def test_a_contact_gets_its_name_once(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    graph.users[PSID] = PETER
    await says(meta_hub, channel, "m1")
    await answered(graph, 1)
    assert tuple(await contact(meta_hub)) == ("Peter Chang", PICTURE)
    # the fields asked for, the token in a header only (the fake refuses it in the URL)
    assert asked(graph) == [{"fields": PROFILE_FIELDS}]

    # a new channel object remembers nothing: the stored name is what stops a second ask
    meta_hub.server.app[CHANNELS].forget(channel.id)
    await says(meta_hub, channel, "m2")
    await answered(graph, 2)
    assert len(asked(graph)) == 1


async def test_a_profile_meta_will_not_give_leaves_the_message_handled_and_no_name(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    graph.users[PSID] = {"page": PAGE, "no_profile": True}  # a phone-number account
    await says(meta_hub, channel, "m1")
    await answered(graph, 1)
    assert tuple(await contact(meta_hub)) == (None, None)
    await says(meta_hub, channel, "m2")
    await answered(graph, 2)
    assert len(asked(graph)) == 1  # the refusal is remembered for the sender

    # another page's PSID is an unknown id to this page's token: refused the same way
    graph.users["2003"] = {**PETER, "page": "9009"}
    await says(meta_hub, channel, "m3", sender="2003")
    await answered(graph, 1, to="2003")
    assert tuple(await contact(meta_hub, "2003")) == (None, None)
    assert len(asked(graph, "2003")) == 1


async def test_meta_down_pauses_every_lookup_and_messages_flow(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    graph.users[PSID] = PETER
    graph.users["2003"] = {**PETER, "first_name": "Mia"}
    graph.fail(500, 2, "Service temporarily unavailable", read=True)
    await says(meta_hub, channel, "m1")
    await answered(graph, 1)
    assert tuple(await contact(meta_hub)) == (None, None)
    # nobody's profile is asked while the pause lasts; their messages are answered
    await says(meta_hub, channel, "m2", sender="2003")
    await answered(graph, 1, to="2003")
    assert len(asked(graph)) == 1 and asked(graph, "2003") == []
    assert (await contact(meta_hub, "2003")).name is None


async def test_a_network_failure_is_no_name_and_no_error(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    graph.users[PSID] = PETER
    graph.hang_up = 10  # aiohttp asks again once itself when a pooled connection drops
    await says(meta_hub, channel, "m1")
    await answered(graph, 1)
    assert 1 <= len(asked(graph)) <= 2 and tuple(await contact(meta_hub)) == (None, None)


async def test_what_a_person_keeps_private_is_left_out(
    meta_hub: TestClient, graph: FakeGraph, channel: MessengerChannel
) -> None:
    graph.users[PSID] = {"page": PAGE, "first_name": "Peter"}  # no last name, no picture
    assert (await channel.profile(PSID)) is not None
    found = await channel.profile(PSID)
    assert found is not None and (found.name, found.avatar_url) == ("Peter", None)
    assert len(asked(graph)) == 1
    # an id that is not a PSID never reaches a Graph path
    assert await channel.profile("me/conversations") is None
    assert [path for path, _ in graph.reads if path != "/me"] == [f"/{PSID}"]


def test_recent_answers_expire_and_the_oldest_go_first() -> None:
    at = [0.0]
    recent: Recent[str | None] = Recent(ttl=10.0, size=2, clock=lambda: at[0])
    recent.set("a", None)
    recent.set("b", "B")
    assert recent.get("a") == (True, None) and recent.get("b") == (True, "B")
    recent.set("c", "C")  # over the size: "a", the oldest, goes
    assert recent.get("a") == (False, None) and recent.get("c") == (True, "C")
    at[0] = 10.0
    assert recent.get("b") == (False, None)
