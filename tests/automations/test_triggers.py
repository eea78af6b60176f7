"""Every event trigger, fired where the change happens (a message, the API, a flow), run by
the worker once the clock hands it over; and the rule that stops loops (bot.workspace.triggers)."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import automation_timers, contacts, conversations, work_items
from bot.workspace.contacts import create_field, tags_of
from tests.automations.helpers import add, runs
from tests.automations.test_engine import team
from tests.conftest import count, eventually, single
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import agent, say


def tagging(name: str, on: str, adds: str, **options: Any) -> str:
    """An automation on `on` (with the trigger's `options`) that tags the contact `adds`."""
    extra = "".join(f", {k}: {v}" for k, v in options.items())
    return f"name: {name}\ntrigger: {{on: {on}{extra}}}\nactions:\n  - tag: {adds}\n"


async def manager(app: Application) -> dict[str, str]:
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
    return {"Authorization": f"Bearer {token}"}


async def tags(app: Application) -> set[str]:
    async with app[DB].read() as conn:
        return set(await tags_of(conn, await single(app, contacts.c.id)))


async def has_tag(app: Application, name: str) -> bool:
    return name in await tags(app)


async def test_the_first_message_opens_a_conversation_and_makes_a_contact(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    opened = await add(app, tagging("opened", "conversation_opened", "opened"))
    created = await add(app, tagging("created", "contact_created", "new"))
    await say(client, app, echo, "hello")
    assert await tags(app) == {"opened", "new"}
    await say(client, app, echo, "again")
    assert len(await runs(app, opened)) == 1 and len(await runs(app, created)) == 1
    # closed, the next message opens another conversation of the same contact
    async with app[DB].write() as conn:
        await conn.execute(conversations.update().values(status="closed"))
    await say(client, app, echo, "back")
    assert len(await runs(app, opened)) == 2 and len(await runs(app, created)) == 1


async def test_tags_added_and_removed_through_the_api(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    vip = await add(app, tagging("vip", "tag_added", "welcomed", tag="vip"))
    gone = await add(app, tagging("unvip", "tag_removed", "was-vip", tag="vip"))
    await say(client, app, echo, "hello")
    headers = await manager(app)
    contact_id = await single(app, contacts.c.id)
    resp = await client.post(
        f"/api/v1/contacts/{contact_id}/tags", json={"tags": ["other"]}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    resp = await client.post(
        f"/api/v1/contacts/{contact_id}/tags", json={"tags": ["vip"]}, headers=headers
    )
    assert resp.status == 200
    await eventually(lambda: has_tag(app, "welcomed"))
    resp = await client.delete(f"/api/v1/contacts/{contact_id}/tags/vip", headers=headers)
    assert resp.status in (200, 204)
    await eventually(lambda: has_tag(app, "was-vip"))
    # "other" matched neither automation's tag
    assert [r.trigger for r in await runs(app, vip)] == ["tag_added"]
    assert [r.trigger for r in await runs(app, gone)] == ["tag_removed"]


async def test_a_field_changed_through_the_api(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    async with app[DB].write() as conn:
        await create_field(conn, app[DEFAULT_SPACE], "plan", "", "choice", ["free", "pro"])
        await create_field(conn, app[DEFAULT_SPACE], "city", "", "text", [])
    await add(
        app,
        """
name: upgraded
trigger: {on: field_changed, field: plan}
conditions: {all: [{field: fields.plan, op: is, value: pro}]}
actions: [{tag: customer}]
""",
    )
    await say(client, app, echo, "hello")
    contact_id, headers = await single(app, contacts.c.id), await manager(app)
    for key, value in (("city", "Lisbon"), ("plan", "free")):
        resp = await client.put(
            f"/api/v1/contacts/{contact_id}/fields/{key}", json={"value": value}, headers=headers
        )
        assert resp.status == 200, await resp.text()
    await settled(app)
    assert await runs(app) == []  # city is not plan; plan is not pro
    resp = await client.put(
        f"/api/v1/contacts/{contact_id}/fields/plan", json={"value": "pro"}, headers=headers
    )
    await eventually(lambda: has_tag(app, "customer"))


async def settled(app: Application) -> None:
    """No event waits for the clock, and the worker has handled what it queued."""
    await eventually(lambda: empty(app, automation_timers))
    await eventually(lambda: empty(app, work_items))


async def empty(app: Application, table: sa.Table) -> bool:
    return await count(app, table) == 0


async def test_closed_assigned_and_handed_over(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    ana = await agent(app, "Ana", "online")
    await team(app, "Sales", ana)
    handed = await add(app, tagging("handed", "handed_over", "handed"))
    assigned = await add(app, tagging("assigned", "conversation_assigned", "assigned"))
    closed = await add(
        app,
        """
name: bye
trigger: {on: conversation_closed}
actions: [{send_message: "Thanks for writing to us!"}]
""",
    )
    await say(client, app, echo, "agent")  # the contact asks for a person: Ana takes it
    await eventually(lambda: has_tag(app, "handed"))
    await eventually(lambda: has_tag(app, "assigned"))
    conversation_id = await single(app, conversations.c.id)
    headers = await manager(app)
    before = len(echo.sent)
    resp = await client.post(f"/api/v1/conversations/{conversation_id}/close", headers=headers)
    assert resp.status == 200, await resp.text()
    await eventually(lambda: len(echo.sent) > before)
    assert echo.sent[-1].parts[0].text == "Thanks for writing to us!"
    assert [len(await runs(app, a)) for a in (handed, assigned, closed)] == [1, 1, 1]
    [run] = await runs(app, assigned)
    assert run.conversation_id == conversation_id


async def test_a_survey_completed(client: TestClient, app: Application, echo: EchoChannel) -> None:
    headers = await manager(app)
    survey = """
name: nps
steps:
  - {id: score, type: question, text: "From 0 to 10?", answer: number, min: 0, max: 10}
"""
    resp = await client.post(
        "/api/v1/surveys", data=survey, headers={**headers, "Content-Type": "application/yaml"}
    )
    assert resp.status == 201
    await add(app, tagging("answered", "survey_completed", "answered", survey="nps"))
    await add(
        app,
        """
name: ask
trigger: {on: message_received}
conditions: {all: [{field: message.text, op: is, value: survey please}]}
actions: [{start_survey: nps}]
""",
    )
    assert await say(client, app, echo, "survey please") == ["From 0 to 10?"]
    await say(client, app, echo, "9")
    await eventually(lambda: has_tag(app, "answered"))


async def test_an_automation_can_start_one_more_never_a_loop(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    """Depth rule: what an automation does may trigger others; what those do triggers none."""
    ping = await add(
        app,
        "name: ping\ntrigger: {on: tag_added, tag: ping}\nactions: [{untag: ping}, {tag: pong}]\n",
    )
    pong = await add(
        app,
        "name: pong\ntrigger: {on: tag_added, tag: pong}\nactions: [{untag: pong}, {tag: ping}]\n",
    )
    await say(client, app, echo, "hello")
    contact_id, headers = await single(app, contacts.c.id), await manager(app)
    resp = await client.post(
        f"/api/v1/contacts/{contact_id}/tags", json={"tags": ["ping"]}, headers=headers
    )
    assert resp.status == 200
    await eventually(lambda: _runs_are(app, 2))
    await asyncio.sleep(1.5)  # a clock round more: pong's `tag: ping` would be due by now
    await settled(app)
    # the API's tag ran `ping` (depth 0), its tag ran `pong` (depth 1), pong's tag stopped
    assert [len(await runs(app, a)) for a in (ping, pong)] == [1, 1]
    assert await tags(app) == {"ping"}
    assert await count(app, automation_timers) == 0


async def _runs_are(app: Application, n: int) -> bool:
    return len(await runs(app)) == n
