"""Automations on messages, through the real pipeline: matched, run in order, recorded,
committed with the work item, and deciding for the routing after them."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import (
    automations,
    contacts,
    conversations,
    messages,
    surveys,
    team_members,
    teams,
)
from bot.workspace.contacts import tags_of
from bot.workspace.triggers import changed
from tests.automations.helpers import add, runs
from tests.conftest import single
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import agent, say

PRICING = """
name: pricing-lead
trigger: {on: message_received}
conditions: {all: [{field: message.text, op: contains, value: price}]}
actions:
  - tag: lead
  - send_message: "Hi {{contact.first_name | default: \\"there\\"}}, our price list is on its way."
  - assign: {team: Sales}
"""


async def team(app: Application, name: str, *members: int) -> int:
    async with app[DB].write() as conn:
        team_id = (
            await conn.execute(
                teams.insert().values(space_id=app[DEFAULT_SPACE], name=name).returning(teams.c.id)
            )
        ).scalar_one()
        for user_id in members:
            await conn.execute(team_members.insert().values(team_id=team_id, user_id=user_id))
    return int(team_id)


async def contact_tags(app: Application) -> list[str]:
    async with app[DB].read() as conn:
        return await tags_of(conn, await single(app, contacts.c.id))


async def test_a_matching_message_runs_the_actions_before_the_routing(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    ana = await agent(app, "Ana", "online")
    await team(app, "Sales", ana)
    automation_id = await add(app, PRICING)

    got = await say(client, app, echo, "What is the price?")

    # the automation answered and handed the conversation to Sales: the bot stayed silent
    assert got == ["Hi there, our price list is on its way."]
    assert await contact_tags(app) == ["lead"]
    async with app[DB].read() as conn:
        row = (await conn.execute(sa.select(conversations))).one()
        sender = (
            await conn.execute(
                sa.select(messages.c.sender_type, messages.c.sender_id).where(
                    messages.c.direction == "out"
                )
            )
        ).one()
    assert (row.handler, row.assignee_id) == ("agent", ana)
    assert tuple(sender) == ("automation", str(automation_id))
    [run] = await runs(app, automation_id)
    assert run.status == "done" and run.trigger == "message_received"
    assert [s["action"] for s in run.steps] == ["tag", "send_message", "assign"]


async def test_a_message_that_does_not_match_goes_to_the_bot_and_runs_nothing(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await team(app, "Sales")
    await add(app, PRICING)
    got = await say(client, app, echo, "hello")
    assert got and "price list" not in got[0]
    assert await runs(app) == []
    assert await contact_tags(app) == []


async def test_a_failing_action_stops_its_run_and_not_the_message(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    async with app[DB].write() as conn:
        await conn.execute(
            surveys.insert().values(
                space_id=app[DEFAULT_SPACE], name="nps", definition={"steps": []}
            )
        )
    automation_id = await add(
        app,
        """
name: survey-on-price
trigger: {on: message_received}
conditions: {all: [{field: message.text, op: is, value: pricing}]}
actions:
  - tag: seen
  - start_survey: nps
  - tag: after
""",
    )
    await say(client, app, echo, "hello")  # the space's automations are compiled now
    async with app[DB].write() as conn:  # gone behind the API's back: found when it runs
        await conn.execute(surveys.delete())
    got = await say(client, app, echo, "pricing")
    assert got and got[0].startswith("Starter is free")  # the bot still answered
    [run] = await runs(app, automation_id)
    assert run.status == "failed"
    assert run.steps == [
        {"action": "tag", "outcome": "seen"},
        {"action": "start_survey", "error": "no survey 'nps' in this space"},
    ]
    assert await contact_tags(app) == ["seen"]


async def test_an_automation_naming_what_was_deleted_is_disabled_with_the_reason(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    sales = await team(app, "Sales")
    automation_id = await add(app, PRICING)
    async with app[DB].write() as conn:  # as `DELETE /api/v1/teams/{id}` does
        await conn.execute(teams.delete().where(teams.c.id == sales))
        await changed(conn, app[DEFAULT_SPACE])
    got = await say(client, app, echo, "price?")
    assert "price list" not in got[0]
    async with app[DB].read() as conn:
        row = (await conn.execute(sa.select(automations))).one()
    assert (row.id, row.enabled) == (automation_id, 0)
    assert row.disabled_reason == "actions[2].assign.team: no team 'Sales' in this space"
    assert await runs(app) == []


async def test_a_disabled_automation_does_not_run(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await team(app, "Sales")
    automation_id = await add(app, PRICING)
    async with app[DB].write() as conn:
        await conn.execute(automations.update().values(enabled=0))
        await changed(conn, app[DEFAULT_SPACE])
    await say(client, app, echo, "price?")
    assert await runs(app, automation_id) == []
