"""Assignment is of the contact (issue #14): handover, claim, the API and closes keep the
contact's assignee, team and status true, and the views' filters match them. Who is free to
take one (round robin under capacity) is bot.workspace.members.

Covers `bot.workspace.conversations`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import assignments, contacts, conversations, identities, users
from bot.workspace import conversations as ops
from tests.conftest import count
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import ALWAYS_CLOSED, agent, say, space_settings


class Api:
    """The REST API as an admin of the default space."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        resp = await self.client.request(
            method, f"/api/v1{path}", json=body, params=params, headers=self.headers
        )
        return resp.status, await resp.json()

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status in (200, 201), answer
        return answer

    async def matching(self, field: str, op: str, value: Any = None) -> list[int]:
        """The ids of the contacts a view with one condition shows, checked against its count."""
        condition = {"field": field, "op": op, "value": value}
        status, body = await self.call(
            "GET", "/contacts", filter=json.dumps({"all": [condition]}), count="1"
        )
        assert status == 200, body
        assert body["count"] == len(body["items"])
        return sorted(c["id"] for c in body["items"])


@pytest.fixture
async def api(client: TestClient, app: Application) -> Api:
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "t", "admin")
    return Api(client, token)


async def contact_of(app: Application, who: str) -> Any:
    async with app[DB].read() as conn:
        return (
            await conn.execute(
                sa.select(contacts)
                .join(identities, identities.c.contact_id == contacts.c.id)
                .where(identities.c.external_id == who)
            )
        ).one()


async def latest(app: Application, who: str) -> Any:
    """The contact's newest conversation."""
    async with app[DB].read() as conn:
        return (
            await conn.execute(
                sa.select(conversations)
                .join(identities, identities.c.id == conversations.c.identity_id)
                .where(identities.c.external_id == who)
                .order_by(conversations.c.id.desc())
                .limit(1)
            )
        ).one()


async def set_availability(app: Application, user_id: int, availability: str) -> None:
    async with app[DB].write() as conn:
        await conn.execute(
            users.update().where(users.c.id == user_id).values(availability=availability)
        )


async def team(api: Api, name: str, *members: int) -> int:
    team_id = (await api.ok("POST", "/teams", {"name": name}))["id"]
    for user_id in members:
        await api.ok("POST", f"/teams/{team_id}/members", {"user_id": user_id})
    return int(team_id)


async def test_a_handover_assigns_the_contact_who_stays_assigned_after_the_close(
    client: TestClient, app: Application, echo: EchoChannel, api: Api
) -> None:
    bea = await agent(app, "Bea", "online")
    await say(client, app, echo, "hello", who="ana")
    await say(client, app, echo, "hello", who="bruno")
    ana = (await contact_of(app, "ana")).id
    assert await api.matching("assignee", "is", bea) == []
    await say(client, app, echo, "human", who="ana")
    assert (await latest(app, "ana")).assignee_id == bea
    assert (await contact_of(app, "ana")).assignee_id == bea
    assert await api.matching("assignee", "is", bea) == [ana]
    assert await api.matching("assignee", "is_set") == [ana]
    bruno = (await contact_of(app, "bruno")).id
    assert await api.matching("assignee", "is_not", bea) == [bruno]  # unassigned ones too
    conversation = (await latest(app, "ana")).id
    await api.ok("POST", f"/conversations/{conversation}/close")
    assert (await contact_of(app, "ana")).assignee_id == bea  # the contact stays Bea's
    assert await api.matching("assignee", "is", bea) == [ana]


async def test_the_space_may_release_the_contact_when_its_conversation_closes(
    client: TestClient, app: Application, echo: EchoChannel, api: Api
) -> None:
    await agent(app, "Bea", "online")
    await space_settings(app, release_on_close=True)
    await say(client, app, echo, "human", who="ana")
    assert (await contact_of(app, "ana")).assignee_id is not None
    await api.ok("POST", f"/conversations/{(await latest(app, 'ana')).id}/close")
    released = await contact_of(app, "ana")
    assert (released.assignee_id, released.team_id) == (None, None)


async def test_a_claim_and_an_api_assignment_assign_the_contact(
    client: TestClient, app: Application, echo: EchoChannel, api: Api
) -> None:
    bea = await agent(app, "Bea", "offline")
    caio = await agent(app, "Caio", "offline")
    await say(client, app, echo, "human", who="ana")
    conversation = (await latest(app, "ana")).id
    assert (await contact_of(app, "ana")).assignee_id is None  # nobody online: it waits
    await api.ok("POST", f"/conversations/{conversation}/assign", {"user_id": caio})
    assert (await contact_of(app, "ana")).assignee_id == caio
    async with app[DB].write() as conn:
        await ops.assign(conn, await ops.get(conn, conversation), None, None)
        assert (await ops.claim(conn, conversation, bea)) is True
    assert (await contact_of(app, "ana")).assignee_id == bea


async def test_a_contacts_new_conversation_goes_to_its_assignee_first_when_available(
    client: TestClient, app: Application, echo: EchoChannel, api: Api
) -> None:
    bea = await agent(app, "Bea", "online")
    caio = await agent(app, "Caio", "online")
    await say(client, app, echo, "human", who="ana")
    assert (await latest(app, "ana")).assignee_id == bea  # round robin: Bea first
    await api.ok("POST", f"/conversations/{(await latest(app, 'ana')).id}/close")
    await say(client, app, echo, "human", who="ana")
    # round robin would give Caio (never given one); Ana is Bea's contact
    assert (await latest(app, "ana")).assignee_id == bea
    await api.ok("POST", f"/conversations/{(await latest(app, 'ana')).id}/close")
    await set_availability(app, bea, "away")
    await say(client, app, echo, "human", who="ana")
    assert (await latest(app, "ana")).assignee_id == caio  # Bea is away: the usual round robin
    assert (await contact_of(app, "ana")).assignee_id == caio


async def test_a_contact_is_assigned_without_a_conversation_and_a_waiting_one_follows(
    client: TestClient, app: Application, echo: EchoChannel, api: Api
) -> None:
    bea = await agent(app, "Bea", "offline")
    caio = await agent(app, "Caio", "online")
    await say(client, app, echo, "hello", who="ana")
    ana = (await contact_of(app, "ana")).id
    await api.ok("POST", f"/conversations/{(await latest(app, 'ana')).id}/close")
    conversations_before = await count(app, conversations)
    answer = await api.ok("POST", f"/contacts/{ana}/assign", {"user_id": bea})
    assert (answer["assignee_id"], answer["team_id"]) == (bea, None)
    assert await count(app, conversations) == conversations_before  # no conversation for it
    assert await api.matching("assignee", "is", bea) == [ana]
    sales = await team(api, "Sales", caio)
    answer = await api.ok("POST", f"/contacts/{ana}/assign", {"team_id": sales})
    assert (answer["assignee_id"], answer["team_id"]) == (caio, sales)  # round robin in Sales
    assert await api.matching("team", "is", sales) == [ana]
    # Bruno waits for a person; assigning the contact gives the waiting conversation too
    await say(client, app, echo, "human", who="bruno")
    bruno = (await contact_of(app, "bruno")).id
    waiting = await latest(app, "bruno")
    assert waiting.assignee_id == caio  # Caio is the only one online
    await set_availability(app, caio, "offline")
    await api.ok("POST", f"/conversations/{waiting.id}/assign", {"user_id": None})
    await api.ok("POST", f"/contacts/{bruno}/assign", {"user_id": bea})
    followed = await latest(app, "bruno")
    assert (followed.handler, followed.assignee_id) == ("agent", bea)
    assert await count(app, assignments, assignments.c.user_id == bea) == 1
    for bad, status in (
        ({}, 400),
        ({"user_id": 999}, 404),
        ({"team_id": 999}, 404),
    ):
        got, body = await api.call("POST", f"/contacts/{ana}/assign", bad)
        assert got == status, body
    got, _ = await api.call("POST", "/contacts/999/assign", {"user_id": bea})
    assert got == 404


async def test_a_conversation_is_assigned_to_a_team_round_robin_or_its_queue(
    client: TestClient, app: Application, echo: EchoChannel, api: Api
) -> None:
    bea = await agent(app, "Bea", "online")
    caio = await agent(app, "Caio", "online")
    dora = await agent(app, "Dora", "online")
    sales = await team(api, "Sales", caio, dora)
    await say(client, app, echo, "hello", who="ana")
    conversation = (await latest(app, "ana")).id
    answer = await api.ok("POST", f"/conversations/{conversation}/assign", {"team_id": sales})
    assert answer["assignee_id"] in (caio, dora) and answer["assignee_id"] != bea
    assert (answer["team_id"], answer["handler"]) == (sales, "agent")
    ana = await contact_of(app, "ana")
    assert (ana.assignee_id, ana.team_id) == (answer["assignee_id"], sales)
    assert await api.matching("team", "is", sales) == [ana.id]
    for user_id in (caio, dora):
        await set_availability(app, user_id, "offline")
    answer = await api.ok("POST", f"/conversations/{conversation}/assign", {"team_id": sales})
    assert (answer["assignee_id"], answer["team_id"], answer["handler"]) == (
        None,
        sales,
        "waiting",
    )
    got, _ = await api.call("POST", f"/conversations/{conversation}/assign", {"team_id": 999})
    assert got == 404


async def test_the_contacts_status_follows_its_conversations(
    client: TestClient, app: Application, echo: EchoChannel, api: Api
) -> None:
    await say(client, app, echo, "hello", who="ana")
    await say(client, app, echo, "hello", who="bruno")
    ana, bruno = (await contact_of(app, "ana")).id, (await contact_of(app, "bruno")).id
    assert await api.matching("status", "is", "closed") == []
    await api.ok("POST", f"/conversations/{(await latest(app, 'ana')).id}/close")
    assert await api.matching("status", "is", "closed") == [ana]
    assert await api.matching("status", "is", "open") == [bruno]
    await say(client, app, echo, "hello again", who="ana")  # a new conversation
    assert await api.matching("status", "is", "closed") == []
    assert await api.matching("status", "is", "open") == [ana, bruno]


async def test_a_handover_outside_hours_is_one_reply_and_assigns_nobody(
    client: TestClient, app: Application, echo: EchoChannel, api: Api
) -> None:
    bea = await agent(app, "Bea", "online")
    await space_settings(app, **ALWAYS_CLOSED, away_text="We open at 9.")
    assert await say(client, app, echo, "human", who="ana") == ["We open at 9."]
    waiting = await latest(app, "ana")
    assert (waiting.handler, waiting.assignee_id) == ("waiting", None)
    await space_settings(app, **ALWAYS_CLOSED, away_text="We open at 9.", assign_outside_hours=True)
    assert await say(client, app, echo, "human", who="bruno") == ["We open at 9."]
    taken = await latest(app, "bruno")
    assert (taken.handler, taken.assignee_id) == ("agent", bea)


async def test_in_hours_the_contact_hears_who_comes_and_the_away_reply_if_nobody_can(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await agent(app, "Bea", "offline")
    got = await say(client, app, echo, "human", who="ana")
    assert got[0] == "Sure, I'm getting a person to help you." and "away right now" in got[1]
    await agent(app, "Caio", "online")
    assert await say(client, app, echo, "human", who="bruno") == [
        "Sure, I'm getting a person to help you."
    ]


async def test_the_bots_handover_outside_hours_is_one_reply(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await agent(app, "Bea", "online")
    await space_settings(app, **ALWAYS_CLOSED, away_text="We open at 9.")
    await say(client, app, echo, "hello")
    assert await say(client, app, echo, "talk to a human") == ["We open at 9."]
