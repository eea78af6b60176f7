# ruff: noqa: F811 - the `people` fixture is imported by name, then requested as an argument
"""Tokens issued for a person act as that person, never above their role (issue #14).

Covers `bot.api.auth`.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.keys import DB
from bot.workspace.bootstrap import add_admin, create_space
from tests.bot.api.test_conversations import auth, open_conversation, people  # noqa: F401
from tests.conftest import eventually
from tests.fakes.echo_channel import EchoChannel


async def _add(client: TestClient, headers: dict[str, str], name: str, role: str) -> int:
    new = {"name": name, "email": f"{name.lower()}@example.com", "role": role}
    made = await client.post("/api/v1/users", json=new, headers=headers)
    assert made.status == 201, await made.text()
    return int((await made.json())["id"])


async def test_a_reply_with_a_token_issued_for_an_agent_is_signed_with_their_name(
    client: TestClient, app: Application, echo: EchoChannel, people: dict[str, Any]
) -> None:
    manager = auth(people["manager"])
    conv = await open_conversation(client, app, echo)
    await eventually(lambda: len(echo.sent) == 3)  # welcome, handover notice, away
    caio = await _add(client, manager, "Caio", "agent")
    issued = await client.post(
        "/api/v1/tokens", json={"name": "caio", "role": "agent", "user_id": caio}, headers=manager
    )
    assert issued.status == 201
    body = await issued.json()
    assert (body["user_id"], body["role"], body["name"]) == (caio, "agent", "caio")
    assert isinstance(body["id"], int)

    sent = await client.post(
        f"/api/v1/conversations/{conv}/messages", json={"text": "hi"}, headers=auth(body["token"])
    )
    assert sent.status == 202
    await eventually(lambda: len(echo.sent) == 4)
    assert echo.sent[3].sender_name == "Caio"  # not Bea, who issued it

    # the list says whose each token is; without user_id a token is its creator's
    mine = await client.post(
        "/api/v1/tokens", json={"name": "mine", "role": "agent"}, headers=manager
    )
    assert (await mine.json())["user_id"] == people["admin_id"]
    listed = await (await client.get("/api/v1/tokens", headers=manager)).json()
    owners = {t["name"]: (t["user_id"], t["user_name"], t["user_email"]) for t in listed["items"]}
    assert owners["caio"] == (caio, "Caio", "caio@example.com")
    assert owners["mine"] == (people["admin_id"], "Bea", "bea@example.com")


async def test_a_token_for_someone_is_never_above_their_role_nor_for_a_stranger(
    client: TestClient, app: Application, people: dict[str, Any]
) -> None:
    manager, admin, agent = auth(people["manager"]), auth(people["admin"]), auth(people["agent"])
    caio = await _add(client, manager, "Caio", "agent")
    dora = await _add(client, manager, "Dora", "manager")

    async def issue(headers: dict[str, str], role: str, user_id: int) -> int:
        body = {"name": "t", "role": role, "user_id": user_id}
        return (await client.post("/api/v1/tokens", json=body, headers=headers)).status

    assert await issue(manager, "manager", caio) == 400  # Caio is an agent here
    assert await issue(admin, "admin", caio) == 400
    assert await issue(manager, "agent", caio) == 201
    assert await issue(manager, "manager", dora) == 201
    # Dora manages the space but does not administer the organization
    assert await issue(admin, "admin", dora) == 400
    assert await issue(admin, "admin", people["admin_id"]) == 201
    # an agent issues nothing, for nobody
    assert await issue(agent, "agent", caio) == 403

    # people of another organization, or nobody at all, do not exist for this space
    async with app[DB].write() as conn:
        other = await create_space(conn, "Globex", "Main", default=False, webchat=False)
        carla = await add_admin(conn, other, "Carla", "carla@example.com")
    assert await issue(manager, "agent", carla) == 404
    assert await issue(manager, "agent", 999_999) == 404
    assert await issue(manager, "billing", carla) == 404
    # billing tokens go to the organization's billing admins and admins only
    assert await issue(manager, "billing", caio) == 400
    assert await issue(manager, "billing", people["admin_id"]) == 201


async def test_an_admin_token_acts_as_an_admin_only_while_its_user_administers_the_org(
    client: TestClient, app: Application, people: dict[str, Any]
) -> None:
    """A space manager who is a plain member of the organization cannot mint admin tokens
    with an admin token issued earlier (by hand or before a demotion)."""
    manager = auth(people["manager"])
    dora = await _add(client, manager, "Dora", "manager")
    async with app[DB].write() as conn:
        old = auth(await create_token(conn, (await _space(client, manager)), dora, "old", "admin"))
    minted = await client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=old)
    assert minted.status == 400
    fine = await client.post("/api/v1/tokens", json={"name": "y", "role": "manager"}, headers=old)
    assert fine.status == 201


async def _space(client: TestClient, headers: dict[str, str]) -> int:
    return int((await (await client.get("/api/v1/space", headers=headers)).json())["id"])
