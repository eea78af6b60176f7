"""Opt-out keywords through the real pipeline: STOP unsubscribes and is answered once,
START subscribes again, the bot never answers them, people still see them, a space's own
words replace the built-in ones, and nothing happens twice (broadcasts.optout)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.keys import DB, DEFAULT_SPACE, PLUGINS
from bot.storage.tables import contacts, identities, messages
from bot.workspace.contacts import create_field
from broadcasts.optout import OPT_IN_REPLY, OPT_OUT_REPLY, normalized, opt_out
from tests.automations.helpers import add, runs
from tests.automations.test_triggers import manager, tagging
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import count, eventually
from tests.fakes.echo_channel import EchoChannel
from tests.handlers.test_handover import agent, say, space_settings, state
from tests.surveys.test_engine import add_survey, asked


async def unsubscribed(app: Application, who: str = "u") -> Any:
    """When the contact who writes as `who` opted out; None while subscribed."""
    async with app[DB].read() as conn:
        return (
            await conn.execute(
                sa.select(contacts.c.unsubscribed_at)
                .join(identities, identities.c.contact_id == contacts.c.id)
                .where(identities.c.external_id == who)
            )
        ).scalar_one()


async def replies(app: Application) -> int:
    return await count(app, messages, messages.c.direction == "out")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("STOP", "stop"), ("  Stop!! ", "stop"), ("Arrêt.", "arrêt"), ("opt  out", "opt out")],
)
def test_a_keyword_is_compared_without_case_spaces_or_trailing_punctuation(
    text: str, expected: str
) -> None:
    assert normalized(text) == expected
    assert normalized("¿stop") == "¿stop"  # only trailing punctuation goes


async def test_stop_unsubscribes_once_and_start_subscribes_again(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello")
    assert await unsubscribed(app) is None

    assert await say(client, app, echo, "STOP") == [OPT_OUT_REPLY]  # no bot answer with it
    since = await unsubscribed(app)
    assert since is not None
    headers = await manager(app)
    contact_id = (await (await client.get("/api/v1/contacts", headers=headers)).json())["items"][0][
        "id"
    ]
    shown = await (await client.get(f"/api/v1/contacts/{contact_id}", headers=headers)).json()
    assert shown["unsubscribed_at"] is not None

    before = await replies(app)
    assert await say(client, app, echo, "stop!") == []  # already out: silence, no bot either
    assert await replies(app) == before
    assert await unsubscribed(app) == since  # the first date stays

    assert await say(client, app, echo, "Start") == [OPT_IN_REPLY]
    assert await unsubscribed(app) is None
    # subscribed already: START is not ours, the bot answers it as any message
    again = await say(client, app, echo, "start")
    assert again and OPT_IN_REPLY not in again


async def test_stop_as_the_first_message_gets_the_reply_and_no_welcome(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    assert await say(client, app, echo, "unsubscribe") == [OPT_OUT_REPLY]
    assert await unsubscribed(app) is not None
    async with app[DB].read() as conn:
        status = (await conn.execute(sa.select(contacts.c.status))).scalar_one()
    assert status == "open"  # the conversation it opened shows in the views


async def test_a_space_s_own_keywords_and_replies_replace_the_built_in_ones(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await space_settings(
        app,
        opt_out_keywords=["Halt", "no more"],
        opt_out_reply="Done, no more news.",
        opt_in_keywords=["back"],
    )
    await say(client, app, echo, "hello")
    got = await say(client, app, echo, "STOP")  # a word for the bot now
    assert got and OPT_OUT_REPLY not in got
    assert await unsubscribed(app) is None
    assert await say(client, app, echo, "no more.") == ["Done, no more news."]
    assert await unsubscribed(app) is not None
    assert await say(client, app, echo, "start") != [OPT_IN_REPLY]
    assert await say(client, app, echo, "BACK") == [OPT_IN_REPLY]
    assert await unsubscribed(app) is None


async def test_an_empty_list_turns_the_keyword_off(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await space_settings(app, opt_out_keywords=[])
    await say(client, app, echo, "hello")
    await say(client, app, echo, "STOP")
    assert await unsubscribed(app) is None


async def test_a_person_s_conversation_still_gets_the_keyword(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    """The contact is told and unsubscribed, and the message goes on (automations, desk)."""
    heard = await add(app, tagging("heard", "message_received", "heard"))
    await say(client, app, echo, "hello")
    assert await say(client, app, echo, "STOP") == [OPT_OUT_REPLY]
    assert len(await runs(app, heard)) == 1  # the bot's conversation: STOP was ours alone
    await say(client, app, echo, "START")

    await agent(app, "Bea", "online")
    await say(client, app, echo, "human")
    assert (await state(app))[0] == "agent"
    seen = len(await runs(app, heard))
    assert await say(client, app, echo, "stop") == [OPT_OUT_REPLY]
    assert await unsubscribed(app) is not None
    assert len(await runs(app, heard)) == seen + 1  # it went on past the opt-out
    assert await say(client, app, echo, "stop") == []
    assert len(await runs(app, heard)) == seen + 2


async def test_stop_in_a_survey_unsubscribes_and_stops_the_survey_too(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    """A survey's own stop word: the flow still hears it (the safe reading of STOP)."""
    async with app[DB].write() as conn:
        for key, kind, options in (
            ("plan", "choice", ["free", "pro"]),
            ("seats", "number", []),
            ("work_email", "email", []),
        ):
            await create_field(conn, app[DEFAULT_SPACE], key, "", kind, options)
    headers = await manager(app)
    survey = await add_survey(client, headers)
    await asked(client, app, echo, headers, survey)
    assert (await state(app))[0] == "flow"
    assert await say(client, app, echo, "STOP") == [OPT_OUT_REPLY, "OK, I stopped."]
    assert await unsubscribed(app) is not None


async def test_ordinary_words_of_a_support_chat_are_not_keywords(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello")
    assert await say(client, app, echo, "cancel")  # the bot answers it (an order, say)
    for text in ("stop it please", "I want to unsubscribe"):  # two misses: people take it
        assert OPT_OUT_REPLY not in await say(client, app, echo, text), text
    assert await unsubscribed(app) is None


async def test_a_redelivered_webhook_changes_and_says_nothing_twice(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello")
    before = await replies(app)
    raw = body({"id": "stop-1", "from": "u", "text": "STOP"})
    assert (await post(client, echo.id, raw)).status == 200
    await eventually(lambda: unsubscribed(app))
    since = await unsubscribed(app)
    again = await post(client, echo.id, raw)
    assert (await again.json())["duplicates"] == 1
    await eventually(lambda: len(echo.sent) == before + 1)
    assert await replies(app) == before + 1
    assert await unsubscribed(app) == since


async def test_a_work_item_handled_twice_replies_once(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    """The worker dies after the opt-out ran and before the commit: handled again, once."""
    crashes = [RuntimeError("the worker died before its commit")]

    async def then_crash(event: Any, ctx: Any) -> bool:
        handled = await opt_out(event, ctx)
        if handled and crashes:
            raise crashes.pop()
        return handled

    handlers = app[PLUGINS].handlers
    handlers[handlers.index(opt_out)] = then_crash  # the worker's own list
    await say(client, app, echo, "hello")
    before = await replies(app)
    assert await say(client, app, echo, "STOP") == [OPT_OUT_REPLY]
    assert not crashes
    assert await replies(app) == before + 1
    assert await unsubscribed(app) is not None


async def test_a_view_finds_the_unsubscribed_and_an_agent_may_opt_one_out(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello", who="ana")
    await say(client, app, echo, "hello", who="bruno")
    await say(client, app, echo, "BAJA", who="ana")
    headers = await manager(app)
    condition = {"field": "unsubscribed_at", "op": "is_set"}
    made = await client.post(
        "/api/v1/views", json={"name": "out", "filter": {"all": [condition]}}, headers=headers
    )
    assert made.status == 201, await made.text()
    url = f"/api/v1/views/{(await made.json())['id']}/contacts"
    page = await (await client.get(url, params={"count": "1"}, headers=headers)).json()
    assert page["count"] == 1 and len(page["items"]) == 1
    (ana,) = page["items"]
    assert ana["unsubscribed_at"] is not None
    everyone = await (await client.get("/api/v1/contacts", headers=headers)).json()
    (bruno,) = [c for c in everyone["items"] if c["id"] != ana["id"]]
    changed = await client.patch(
        f"/api/v1/contacts/{bruno['id']}", json={"subscribed": False}, headers=headers
    )
    assert (await changed.json())["unsubscribed_at"] is not None
    page = await (await client.get(url, params={"count": "1"}, headers=headers)).json()
    assert page["count"] == 2


async def test_a_merge_keeps_the_survivor_unsubscribed_and_undo_restores_it(
    client: TestClient, app: Application, echo: EchoChannel
) -> None:
    await say(client, app, echo, "hello", who="ana")
    await say(client, app, echo, "hello", who="ana2")
    await say(client, app, echo, "SAIR", who="ana2")
    headers = await manager(app)
    items = (await (await client.get("/api/v1/contacts", headers=headers)).json())["items"]
    ids = {c["id"]: c for c in items}
    out = next(i for i, c in ids.items() if c["unsubscribed_at"] is not None)
    survivor = next(i for i in ids if i != out)
    merged = await client.post(
        f"/api/v1/contacts/{survivor}/merge", json={"other_id": out}, headers=headers
    )
    assert merged.status == 201
    shown = await (await client.get(f"/api/v1/contacts/{survivor}", headers=headers)).json()
    assert shown["unsubscribed_at"] == ids[out]["unsubscribed_at"]
    # the person is out on every channel now: a STOP from the first one is not news
    assert await say(client, app, echo, "stop", who="ana") == []

    merge_id = (await merged.json())["merge_id"]
    undone = await client.post(f"/api/v1/merges/{merge_id}/undo", headers=headers)
    assert undone.status == 200
    shown = await (await client.get(f"/api/v1/contacts/{survivor}", headers=headers)).json()
    assert shown["unsubscribed_at"] is None
    other = await (await client.get(f"/api/v1/contacts/{out}", headers=headers)).json()
    assert other["unsubscribed_at"] == ids[out]["unsubscribed_at"]
