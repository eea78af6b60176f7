"""Surveys through the real pipeline: asked, answered, validated, branched, saved, reported."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application

from bot.api.auth import create_token
from bot.clock import now
from bot.keys import DB, DEFAULT_SPACE, SENDER
from bot.storage.tables import (
    contacts,
    conversations,
    field_values,
    flow_runs,
    identities,
    outbox,
    spaces,
    webhook_deliveries,
)
from bot.workspace.contacts import create_field
from broadcasts.optout import OPT_OUT_REPLY
from surveys.clock import FlowClock
from tests.bot.delivery.test_webhooks import subscribe
from tests.bot.pipeline.test_webhooks import body, post
from tests.conftest import count, eventually, single
from tests.fakes.echo_channel import EchoChannel
from tests.fakes.webhook_receiver import receiving
from tests.handlers.test_handover import agent, say

Handler = Callable[[web.Request], Awaitable[web.Response]]

ONBOARDING = """
name: onboarding
completed_text: Thanks, all saved!
remind_after_hours: 2
expire_after_hours: 24
steps:
  - id: intro
    type: message
    text: Three quick questions.
  - id: plan
    type: question
    text: Which plan are you on?
    answer: choice
    options: [free, pro]
    save_to: plan
    next:
      - if: {all: [{field: answers.plan, op: is, value: pro}]}
        goto: seats
      - goto: email
  - id: seats
    type: question
    text: How many seats?
    answer: number
    min: 1
    max: 500
    save_to: seats
    retry_text: Just the number of seats, please.
    max_retries: 1
  - id: email
    type: question
    text: Your work email?
    answer: email
    save_to: work_email
on_complete:
  - tag: onboarded
"""


@pytest.fixture
async def manager(app: Application) -> dict[str, str]:
    async with app[DB].write() as conn:
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
        space = app[DEFAULT_SPACE]
        await create_field(conn, space, "plan", "", "choice", ["free", "pro"])
        await create_field(conn, space, "seats", "", "number", [])
        await create_field(conn, space, "work_email", "", "email", [])
    return {"Authorization": f"Bearer {token}"}


async def add_survey(client: TestClient, headers: dict[str, str], text: str = ONBOARDING) -> int:
    resp = await client.post(
        "/api/v1/surveys", data=text, headers={**headers, "Content-Type": "application/yaml"}
    )
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def send(client: TestClient, headers: dict[str, str], survey: int, **to: Any) -> Any:
    resp = await client.post(f"/api/v1/surveys/{survey}/send", json=to, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def contact_id(app: Application, who: str = "u") -> int:
    async with app[DB].read() as conn:
        return (
            await conn.execute(
                sa.select(identities.c.contact_id).where(identities.c.external_id == who)
            )
        ).scalar_one()


async def asked(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str], survey: int
) -> None:
    """A contact says hello, is sent `survey`, and has its first question."""
    await say(client, app, echo, "hello")
    await send(client, manager, survey, contact_ids=[await contact_id(app)])
    await eventually(lambda: _empty_outbox(app))


@contextlib.asynccontextmanager
async def receiver(**routes: Handler) -> AsyncIterator[TestServer]:
    """A webhook receiver serving `POST /name` with each `name=handler`."""
    hooks = web.Application()
    for name, handler in routes.items():
        hooks.router.add_post(f"/{name}", handler)
    server = TestServer(hooks)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def sent_texts(app: Application, echo: EchoChannel, since: int) -> list[str]:
    await eventually(lambda: _empty_outbox(app))
    return [p.text for o in echo.sent[since:] for p in o.parts if hasattr(p, "text")]


async def fields_of(app: Application, contact: int) -> dict[int, Any]:
    async with app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(field_values).where(field_values.c.contact_id == contact)
        )
        return {r.field_id: r.value_text or r.value_number for r in rows}


async def test_a_survey_runs_validates_branches_and_saves(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    survey = await add_survey(client, manager)
    await say(client, app, echo, "hello", who="u")
    ana = await contact_id(app)
    before = len(echo.sent)
    assert await send(client, manager, survey, contact_ids=[ana]) == {"started": 1, "skipped": []}
    assert await sent_texts(app, echo, before) == [
        "Three quick questions.",
        "Which plan are you on?",
    ]
    buttons = echo.sent[-1].parts[-1]
    assert [b.payload for b in buttons.replies] == ["free", "pro"]  # native buttons per channel

    assert await say(client, app, echo, "2") == ["How many seats?"]  # "2": the second option
    assert await say(client, app, echo, "lots") == [
        "Just the number of seats, please.",
        "How many seats?",
    ]
    assert await say(client, app, echo, "12") == ["Your work email?"]
    # a bad email, with no retry text: the reader says what it wants
    got = await say(client, app, echo, "ana at work")
    assert got[0] == "Sorry, that does not look like an email address (name@example.com)."
    assert await say(client, app, echo, "ana@acme.example") == ["Thanks, all saved!"]

    assert set((await fields_of(app, ana)).values()) == {"pro", 12.0, "ana@acme.example"}
    async with app[DB].read() as conn:
        handler = (await conn.execute(sa.select(conversations.c.handler))).scalar()
    assert handler == "bot"  # the bot answers again
    assert (await say(client, app, echo, "pricing"))[0].startswith("Starter is free")

    results = await (await client.get(f"/api/v1/surveys/{survey}/results", headers=manager)).json()
    assert results["counts"]["completed"] == 1 and results["completion_rate"] == 1.0
    assert results["items"][0]["answers"] == {
        "plan": "pro",
        "seats": 12.0,
        "email": "ana@acme.example",
    }
    exported = await (
        await client.get(f"/api/v1/surveys/{survey}/results.csv", headers=manager)
    ).text()
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert (
        rows[0]["plan"] == "pro" and rows[0]["seats"] == "12" and rows[0]["status"] == "completed"
    )
    tags = await (await client.get("/api/v1/tags", headers=manager)).json()
    assert tags["items"] == [{"name": "onboarded", "contacts": 1}]


async def test_give_up_skip_stop_and_the_other_branch(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    survey = await add_survey(client, manager)
    await asked(client, app, echo, manager, survey)
    assert await say(client, app, echo, "free") == ["Your work email?"]  # the other branch
    assert (await say(client, app, echo, "nope"))[-1] == "Your work email?"
    assert (await say(client, app, echo, "still nope"))[-1] == "Your work email?"
    # third miss: max_retries (2) spent, the question is skipped, the survey completes
    assert await say(client, app, echo, "no way") == ["Thanks, all saved!"]

    await send(client, manager, survey, contact_ids=[await contact_id(app)])
    await eventually(lambda: _empty_outbox(app))
    # STOP also unsubscribes them from broadcasts (a broadcast after a STOP is the worse
    # mistake), and says so; the survey stops as well
    assert await say(client, app, echo, "stop") == [OPT_OUT_REPLY, "OK, I stopped."]
    results = await (await client.get(f"/api/v1/surveys/{survey}/results", headers=manager)).json()
    assert results["counts"]["stopped"] == 1 and results["counts"]["completed"] == 1
    assert results["items"][0]["answers"] == {}  # the stopped one, newest first


async def test_two_messages_at_once_advance_it_once_each_in_order(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    survey = await add_survey(client, manager)
    await asked(client, app, echo, manager, survey)
    # both queued at once (one delivery, as platforms batch them), in this order
    two = body({"id": "x1", "from": "u", "text": "pro"}, {"id": "x2", "from": "u", "text": "3"})
    assert (await (await post(client, echo.id, two)).json())["stored"] == 2
    await eventually(lambda: _finished(app, "in_progress", step="email"))
    async with app[DB].read() as conn:
        answers = (await conn.execute(sa.select(flow_runs.c.answers))).scalar()
    assert answers == {"plan": "pro", "seats": 3.0}


async def test_reminder_then_expiry_keep_the_answers(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    survey = await add_survey(client, manager)
    await asked(client, app, echo, manager, survey)
    await say(client, app, echo, "pro")
    clock = FlowClock(app[DB], app[SENDER].notify)
    assert await clock.tick(now() + timedelta(hours=1)) == (0, 0)
    before = len(echo.sent)
    assert await clock.tick(now() + timedelta(hours=3)) == (1, 0)
    assert await clock.tick(now() + timedelta(hours=4)) == (0, 0)  # reminded once
    assert (await sent_texts(app, echo, before))[0].startswith("Still there?")
    assert await clock.tick(now() + timedelta(hours=25)) == (0, 1)
    async with app[DB].read() as conn:
        run = (await conn.execute(sa.select(flow_runs))).one()
        handler = (await conn.execute(sa.select(conversations.c.handler))).scalar()
    assert (run.status, run.answers, handler) == ("expired", {"plan": "pro"}, "bot")
    assert (await say(client, app, echo, "pricing"))[0].startswith("Starter is free")


async def test_who_is_skipped_and_why(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    survey = await add_survey(client, manager)
    await say(client, app, echo, "hello", who="a")
    await say(client, app, echo, "human", who="b")  # with people now
    async with app[DB].write() as conn:
        nobody = (
            await conn.execute(
                contacts.insert()
                .values(space_id=app[DEFAULT_SPACE], name="imported")
                .returning(contacts.c.id)
            )
        ).scalar_one()
    view = await client.post(
        "/api/v1/views", json={"name": "all", "filter": {"all": []}}, headers=manager
    )
    result = await send(client, manager, survey, view_id=(await view.json())["id"])
    assert result["started"] == 1
    reasons = {r["contact_id"]: r["reason"] for r in result["skipped"]}
    assert reasons == {
        await contact_id(app, "b"): "a person is talking with them",
        nobody: "no chat to reach them on",
    }
    again = await send(client, manager, survey, contact_ids=[await contact_id(app, "a")])
    assert again["skipped"][0]["reason"] == "already answering a survey"


async def test_the_satisfaction_survey_follows_a_close(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    csat = """
name: csat
steps:
  - id: score
    type: question
    text: How did we do?
    answer: rating
completed_text: Thank you!
"""
    await add_survey(client, manager, csat)
    async with app[DB].write() as conn:
        await conn.execute(spaces.update().values(settings={"csat_survey": "csat"}))
    await agent(app, "Bea", "online")
    await say(client, app, echo, "human")  # a person handles it: it gets the survey
    async with app[DB].read() as conn:
        conversation = (await conn.execute(sa.select(conversations.c.id))).scalar_one()
    before = len(echo.sent)
    closed = await client.post(f"/api/v1/conversations/{conversation}/close", headers=manager)
    assert closed.status == 200
    assert await sent_texts(app, echo, before) == ["How did we do?"]
    assert [b.title for b in echo.sent[-1].parts[-1].replies][-1] == "⭐⭐⭐⭐⭐"
    assert await say(client, app, echo, "5") == ["Thank you!"]


async def test_answers_only_go_into_fields_that_can_hold_them(
    client: TestClient, manager: dict[str, str]
) -> None:
    wrong = ONBOARDING.replace("save_to: seats", "save_to: work_email")
    resp = await client.post(
        "/api/v1/surveys", data=wrong, headers={**manager, "Content-Type": "application/yaml"}
    )
    detail = (await resp.json())["detail"]
    assert resp.status == 400
    assert (
        "step 'seats', save_to: a number answer cannot go into 'work_email', whose type is email"
        in detail
    )
    missing = ONBOARDING.replace("save_to: seats", "save_to: nope")
    resp = await client.post(
        "/api/v1/surveys", data=missing, headers={**manager, "Content-Type": "application/yaml"}
    )
    assert "no custom field 'nope'" in (await resp.json())["detail"]


async def _empty_outbox(app: Application) -> bool:
    return await count(app, outbox) == 0


async def _finished(app: Application, status: str, step: str) -> bool:
    async with app[DB].read() as conn:
        run = (await conn.execute(sa.select(flow_runs.c.status, flow_runs.c.step))).first()
    return run is not None and (run.status, run.step) == (status, step)


async def test_end_actions_webhook_next_flow_and_handover(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    received: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    second = """
name: second
steps:
  - {id: ok, type: question, text: "May a person call you?", answer: yes_no}
on_complete:
  - handover: {team: Sales, note: wants a call}
"""
    async with receiver(hook=hook) as server:
        first = f"""
name: first
steps:
  - {{id: mood, type: question, text: "How are you?", answer: text}}
completed_text: Noted.
on_complete:
  - webhook: {server.make_url("/hook")}
  - start_flow: second
"""
        await add_survey(client, manager, second)
        survey = await add_survey(client, manager, first)
        await asked(client, app, echo, manager, survey)
        got = await say(client, app, echo, "great")
        assert got == ["Noted.", "May a person call you?"]
        await eventually(lambda: bool(received))
        assert received == [
            {"survey": "first", "contact_id": 1, "conversation_id": 1, "answers": {"mood": "great"}}
        ]
        await say(client, app, echo, "yes")
    async with app[DB].read() as conn:
        handler = (await conn.execute(sa.select(conversations.c.handler))).scalar()
        statuses = (await conn.execute(sa.select(flow_runs.c.status))).scalars().all()
    assert handler == "waiting" and list(statuses) == ["completed", "completed"]


async def test_a_completed_survey_is_heard_with_its_answers(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    async with receiving() as hooks:
        made = await subscribe(client, manager, hooks.url(), "survey.completed")
        flow = """
name: mood
steps:
  - {id: mood, type: question, text: "How are you?", answer: text}
"""
        survey = await add_survey(client, manager, flow)
        await asked(client, app, echo, manager, survey)
        await say(client, app, echo, "fine")
        await eventually(lambda: hooks.requests)
    data = hooks.requests[0].verified(made["secret"])["data"]
    assert data["survey"] == {"id": survey, "name": "mood"}
    assert data["answers"] == {"mood": "fine"}
    assert data["contact_id"] == await single(app, conversations.c.contact_id)


async def test_a_webhook_receiver_that_is_down_gets_the_answers_later(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    answers: list[Any] = []
    refusals = [503, 429]  # then it takes them

    async def hook(request: web.Request) -> web.Response:
        if refusals:
            return web.Response(status=refusals.pop(0), headers={"Retry-After": "1"})
        answers.append(await request.json())
        return web.Response(status=200)

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410)

    async with receiver(hook=hook, gone=gone) as server:
        flow = f"""
name: mood
steps:
  - {{id: mood, type: question, text: "How are you?", answer: text}}
completed_text: Noted.
on_complete:
  - webhook: {server.make_url("/gone")}
  - webhook: {server.make_url("/hook")}
"""
        survey = await add_survey(client, manager, flow)
        await asked(client, app, echo, manager, survey)
        # the contact is answered at once, whatever the receivers do
        assert await say(client, app, echo, "fine") == ["Noted."]
        metrics = await (await client.get("/metrics")).text()
        owed = re.search(r'chancenter_queue_depth\{queue="webhooks"\} (\S+)', metrics)
        assert owed is not None and float(owed[1]) >= 1  # owed, and shown
        await eventually(lambda: bool(answers), timeout=10)
        assert answers == [
            {"survey": "mood", "contact_id": 1, "conversation_id": 1, "answers": {"mood": "fine"}}
        ]
        assert refusals == []  # refused twice, retried, then taken
        await eventually(lambda: _no_webhooks(app))  # the 410 is not asked again


async def _no_webhooks(app: Application) -> bool:
    return await count(app, webhook_deliveries, webhook_deliveries.c.status == "pending") == 0


async def test_webhooks_of_one_conversation_arrive_in_order_even_across_a_retry(
    client: TestClient, app: Application, echo: EchoChannel, manager: dict[str, str]
) -> None:
    arrived: list[str] = []
    refusals = [503]  # the first call, then it takes them

    async def hook(request: web.Request) -> web.Response:
        if refusals:
            return web.Response(status=refusals.pop(), headers={"Retry-After": "2"})
        arrived.append(request.query["n"])
        return web.Response(status=200)

    async with receiver(hook=hook) as server:
        first = f"""
name: first
steps:
  - {{id: mood, type: question, text: "How are you?", answer: text}}
on_complete:
  - webhook: {server.make_url("/hook")}?n=1
  - start_flow: second
"""
        second = f"""
name: second
steps:
  - {{id: more, type: question, text: "Anything else?", answer: text}}
on_complete:
  - webhook: {server.make_url("/hook")}?n=2
"""
        await add_survey(client, manager, second)
        survey = await add_survey(client, manager, first)
        await asked(client, app, echo, manager, survey)
        assert await say(client, app, echo, "fine") == ["Anything else?"]
        await say(client, app, echo, "no")  # the second is owed while the first waits
        await eventually(lambda: len(arrived) == 2, timeout=10)
        assert arrived == ["1", "2"]
