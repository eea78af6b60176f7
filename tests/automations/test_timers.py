"""Time-based automations: `no_reply` both ways, `wait`, `schedule` and `date_field`, with
short durations against the real app (its clock runs every second)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.clock import db_datetime, now
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import automation_timers, contacts, conversations, views, work_items
from bot.workspace.contacts import create_field, set_field
from tests.automations.helpers import add, clock, runs
from tests.automations.test_triggers import empty, has_tag
from tests.conftest import eventually, single
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import agent, say

NUDGE = """
name: nudge
trigger: {on: no_reply, from: contact, after: 2s}
actions:
  - send_message: "Still there?"
"""


async def test_no_reply_from_the_contact_nudges_once_after_our_last_message(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    automation_id = await add(app, NUDGE)
    await say(client, app, echo, "hello")  # the bot answers: the wait for the contact starts
    assert await single(app, automation_timers.c.kind) == "no_reply"
    await eventually(lambda: "Still there?" in texts_now(echo), timeout=6)
    [run] = await runs(app, automation_id)
    assert run.trigger == "no_reply" and run.status == "done"
    await asyncio.sleep(2.5)  # fired once: nothing re-armed it (our nudge is no answer)
    assert texts_now(echo).count("Still there?") == 1


def texts_now(echo: EchoChannel) -> list[str]:
    return [p.text for o in echo.sent for p in o.parts if hasattr(p, "text")]


async def test_no_reply_is_cancelled_when_the_contact_answers(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await add(app, NUDGE.replace("2s", "3s"))
    await say(client, app, echo, "hello")
    due = db_datetime(await single(app, automation_timers.c.due_at))
    await asyncio.sleep(1)
    await say(client, app, echo, "pricing")  # answered by the bot: counts from now again
    moved = db_datetime(await single(app, automation_timers.c.due_at))
    assert moved > due
    async with app[DB].write() as conn:  # the bot stops answering: a person has it
        await conn.execute(conversations.update().values(handler="agent"))
    await say(client, app, echo, "are you there?")  # the contact wrote last: nothing to wait
    assert await empty(app, automation_timers)
    await asyncio.sleep(3.5)
    assert "Still there?" not in texts_now(echo)
    assert await runs(app) == []


async def test_no_reply_from_an_agent_until_a_person_answers(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    ana = await agent(app, "Ana", "online")
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], ana, "ana", "agent")
    headers = {"Authorization": f"Bearer {token}"}
    late = await add(
        app,
        """
name: unanswered
trigger: {on: no_reply, from: agent, after: 2s}
actions:
  - tag: waiting-too-long
  - note: "Nobody answered for 2 seconds"
""",
    )
    await say(client, app, echo, "agent")  # handed to Ana; the contact waits for her
    await say(client, app, echo, "hello?")
    conversation_id = await single(app, conversations.c.id)
    resp = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Hi!"}, headers=headers
    )
    assert resp.status == 202, await resp.text()
    assert await empty(app, automation_timers)  # Ana answered: nothing is due
    await say(client, app, echo, "and the price?")  # the contact waits again
    await eventually(lambda: has_tag(app, "waiting-too-long"), timeout=6)
    [run] = await runs(app, late)
    assert [s["action"] for s in run.steps] == ["tag", "note"]


async def test_wait_runs_the_rest_later(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    automation_id = await add(
        app,
        """
name: follow-up
trigger: {on: conversation_opened}
actions:
  - send_message: "Welcome!"
  - wait: 2s
  - send_message: "Anything else?"
""",
    )
    got = await say(client, app, echo, "hello")
    assert got[0] == "Welcome!" and "Anything else?" not in got
    [run] = await runs(app, automation_id)
    assert run.status == "waiting"
    await eventually(lambda: "Anything else?" in texts_now(echo), timeout=6)
    [run] = await runs(app, automation_id)
    assert run.status == "done"
    assert [s["action"] for s in run.steps] == ["send_message", "wait", "send_message"]
    assert texts_now(echo).count("Welcome!") == 1


async def test_a_schedule_runs_for_the_contacts_of_its_view(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello", who="ana")
    await say(client, app, echo, "hello", who="bo")
    async with app[DB].write() as conn:
        await conn.execute(
            contacts.update()
            .where(contacts.c.id == sa.select(sa.func.min(contacts.c.id)).scalar_subquery())
            .values(name="Ana")
        )
        view_id = (
            await conn.execute(
                views.insert()
                .values(
                    space_id=app[DEFAULT_SPACE],
                    name="named Ana",
                    filter={"all": [{"field": "name", "op": "is", "value": "Ana"}]},
                )
                .returning(views.c.id)
            )
        ).scalar_one()
    automation_id = await add(
        app,
        f"""
name: monday
trigger: {{on: schedule, cron: "0 9 * * mon", view_id: {view_id}}}
actions: [{{tag: weekly}}]
""",
    )
    due = db_datetime(await single(app, automation_timers.c.due_at))
    assert due.weekday() == 0 and (due.hour, due.minute) == (9, 0)  # the space is in UTC
    assert await clock(app).tick(at=due - timedelta(seconds=1)) == 0  # not yet
    assert await clock(app).tick(at=due) == 1
    await eventually(lambda: empty(app, work_items))
    [run] = await runs(app, automation_id)
    assert run.trigger == "schedule"
    # the next Monday is armed in the same commit
    assert db_datetime(await single(app, automation_timers.c.due_at)) == due + timedelta(weeks=1)


async def test_date_field_runs_days_before_the_date_at_the_hour(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    async with app[DB].write() as conn:
        await create_field(conn, app[DEFAULT_SPACE], "renewal_date", "", "date", [])
    automation_id = await add(
        app,
        """
name: renewal
trigger: {on: date_field, field: renewal_date, offset: -3d, at: "09:00"}
actions: [{send_message: "Your plan renews in 3 days."}]
""",
    )
    due = db_datetime(await single(app, automation_timers.c.due_at))
    assert (due.hour, due.minute) == (9, 0) and now() < due <= now() + timedelta(days=1)
    await say(client, app, echo, "hello", who="ana")
    await say(client, app, echo, "hello", who="bo")
    async with app[DB].write() as conn:
        ana, bo = (await conn.execute(sa.select(contacts.c.id).order_by(contacts.c.id))).scalars()
        for contact_id, days in ((ana, 3), (bo, 4)):  # Bo's is a day later
            renewal = (due + timedelta(days=days)).date().isoformat()
            await set_field(conn, app[DEFAULT_SPACE], contact_id, "renewal_date", renewal)
    assert await clock(app).tick(at=due) == 1
    await eventually(lambda: "Your plan renews in 3 days." in texts_now(echo))
    [run] = await runs(app, automation_id)
    assert run.contact_id == ana
    assert db_datetime(await single(app, automation_timers.c.due_at)) == due + timedelta(days=1)
