"""The actions not covered elsewhere: set_field, branch, unassign, hand_over, back_to_bot,
close, webhook, a shortcut's message, once_per_contact, active_hours; and a message handled
twice runs its automations once."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.keys import DB, DEFAULT_SPACE, PLUGINS
from bot.storage.tables import conversations, messages, shortcuts, spaces
from bot.workspace.contacts import create_field
from tests.automations.helpers import add, runs
from tests.automations.test_engine import team
from tests.automations.test_triggers import tags
from tests.bot.delivery.test_webhooks import subscribe
from tests.conftest import eventually, single
from tests.fakes.echo_channel import EchoChannel
from tests.fakes.webhook_receiver import receiving
from tests.handlers.test_handover import ALWAYS_CLOSED, agent, say
from tests.surveys.test_engine import fields_of, receiver


async def test_set_field_and_a_branch_on_what_it_set(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    async with app[DB].write() as conn:
        await create_field(conn, app[DEFAULT_SPACE], "source", "", "text", [])
    automation_id = await add(
        app,
        """
name: source
trigger: {on: conversation_opened}
actions:
  - set_field: {source: echo}
  - branch:
      if: {all: [{field: fields.source, op: is, value: echo}]}
      then: [{tag: from-echo}]
      else: [{tag: elsewhere}]
""",
    )
    await say(client, app, echo, "hello")
    assert await tags(app) == {"from-echo"}
    assert list((await fields_of(app, await single(app, conversations.c.contact_id))).values()) == [
        "echo"
    ]
    [run] = await runs(app, automation_id)
    assert [s.get("outcome") for s in run.steps] == ["source = 'echo'", "then", "from-echo"]


async def test_hand_over_back_to_bot_and_unassign(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    ana = await agent(app, "Ana", "online")
    await team(app, "Support", ana)
    await add(
        app,
        """
name: escalate
trigger: {on: message_received}
conditions: {all: [{field: message.text, op: is, value: refund}]}
actions: [{hand_over: {team: Support, note: wants a refund}}]
""",
    )
    await add(
        app,
        """
name: release
trigger: {on: message_received}
conditions: {all: [{field: message.text, op: is, value: never mind}]}
actions: [{unassign: true}, {back_to_bot: true}]
""",
    )
    await say(client, app, echo, "refund")
    assert await single(app, conversations.c.handler) == "agent"
    assert await single(app, conversations.c.assignee_id) == ana
    await say(client, app, echo, "never mind")
    async with app[DB].read() as conn:
        row = (await conn.execute(sa.select(conversations))).one()
    assert (row.handler, row.assignee_id) == ("bot", None)
    got = await say(client, app, echo, "pricing")
    assert got[0].startswith("Starter is free")  # the bot answers again


async def test_close_stops_the_routing_and_a_shortcut_is_sent(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    async with app[DB].write() as conn:
        await conn.execute(
            shortcuts.insert().values(
                space_id=app[DEFAULT_SPACE], name="bye", text="Bye {{contact.first_name}}!"
            )
        )
    await add(
        app,
        """
name: goodbye
trigger: {on: message_received}
conditions: {all: [{field: message.text, op: is, value: bye}]}
actions: [{send_message: {shortcut: bye}}, {close: true}]
""",
    )
    assert await say(client, app, echo, "bye") == ["Bye !"]  # no bot answer after the close
    assert await single(app, conversations.c.status) == "closed"


async def test_a_webhook_is_posted(client: TestClient, app: Application, echo: EchoChannel) -> None:
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response()

    async with receiver(hook=hook) as server:
        url = str(server.make_url("/hook"))
        automation_id = await add(
            app,
            f"name: crm\ntrigger: {{on: contact_created}}\nactions: [{{webhook: '{url}'}}]\n",
        )
        await say(client, app, echo, "hello")
        await eventually(lambda: got)
    contact_id = await single(app, conversations.c.contact_id)
    assert got == [
        {
            "automation": "crm",
            "automation_id": automation_id,
            "trigger": "contact_created",
            "contact_id": contact_id,
            "conversation_id": await single(app, conversations.c.id),
        }
    ]


async def test_the_webhook_action_is_an_event_for_subscriptions_too(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
    async with receiving() as hooks:
        manager = {"Authorization": f"Bearer {token}"}
        made = await subscribe(client, manager, hooks.url("/crm"), "automation.webhook")
        await add(
            app,
            "name: crm\ntrigger: {on: contact_created}\n"
            f"actions: [{{webhook: '{hooks.url('/own')}'}}]\n",
        )
        await say(client, app, echo, "hello")
        await eventually(lambda: len(hooks.requests) == 2)
    own, heard = sorted(hooks.requests, key=lambda r: r.path != "/own")
    assert "webhook-signature" not in own.headers  # its own URL has no secret
    event = heard.verified(made["secret"])
    assert event["type"] == "automation.webhook" and event["data"] == own.json
    assert own.json["automation"] == "crm"


async def test_once_per_contact_and_active_hours(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    once = await add(
        app,
        "name: once\ntrigger: {on: message_received}\nonce_per_contact: true\n"
        "actions: [{tag: greeted}]\n",
    )
    hours = await add(
        app,
        "name: hours\ntrigger: {on: message_received}\nactive_hours: true\n"
        "actions: [{tag: in-hours}]\n",
    )
    await say(client, app, echo, "hello")
    await say(client, app, echo, "again")
    assert len(await runs(app, once)) == 1
    assert len(await runs(app, hours)) == 2  # no schedule: always open
    async with app[DB].write() as conn:
        await conn.execute(spaces.update().values(settings=ALWAYS_CLOSED))
    await say(client, app, echo, "at night")
    assert len(await runs(app, hours)) == 2


async def test_a_message_handled_twice_runs_its_automations_once(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    """The worker dies after the automations ran and before the commit: the message is
    handled again, and only the second handling is committed."""
    automation_id = await add(
        app,
        "name: hi\ntrigger: {on: message_received}\n"
        "actions: [{tag: seen}, {send_message: Hi from the automation}]\n",
    )
    crashes = [RuntimeError("the worker died before its commit")]

    async def crash_once(event: object, ctx: object) -> bool:
        if crashes:
            raise crashes.pop()
        return False

    app[PLUGINS].handlers.insert(1, crash_once)  # the worker's own list: after automations
    await say(client, app, echo, "hello")
    assert not crashes
    assert len(await runs(app, automation_id)) == 1
    async with app[DB].read() as conn:
        sent = (
            await conn.execute(
                sa.select(sa.func.count()).where(messages.c.sender_type == "automation")
            )
        ).scalar_one()
    assert sent == 1
    assert await tags(app) == {"seen"}
