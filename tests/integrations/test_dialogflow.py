"""The Dialogflow bot through the real async client, against a local DetectIntent server.

Covers `bot.workspace.space_bots`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.errors import IntegrationError
from bot.keys import CHANNELS, DB, DEFAULT_SPACE
from bot.model import QuickRepliesPart, TextPart
from bot.pipeline.bots import BotQuery
from bot.plugins import Plugins
from bot.settings import Settings
from bot.storage.tables import field_values, surveys
from bot.workspace.bootstrap import create_space
from bot.workspace.contacts import create_field
from handlers.bot import BOT_ERROR_TEXT, NOT_UNDERSTOOD_TEXT
from integrations.dialogflow import DialogflowBot
from surveys.definition import dump, parse_survey
from tests.conftest import add_channel, closed_within
from tests.fakes.dialogflow import FakeDialogflow, serve
from tests.handlers.test_handover import say, state


@pytest.fixture
async def dialogflow() -> AsyncIterator[FakeDialogflow]:
    async with serve() as fake:
        yield fake


def bot(fake: FakeDialogflow, **kwargs: object) -> DialogflowBot:
    return DialogflowBot("acme-agent", f"127.0.0.1:{fake.port}", **kwargs)  # type: ignore[arg-type]


async def test_welcome_event_and_every_message_in_order(dialogflow: FakeDialogflow) -> None:
    reply = await bot(dialogflow).detect(
        BotQuery(session_id="conversation-7", event="WELCOME", language="pt")
    )
    (request,) = dialogflow.requests
    assert request.session == "projects/acme-agent/agent/sessions/conversation-7"
    assert request.query_input.event.name == "WELCOME"
    assert request.query_input.event.language_code == "pt"
    assert reply.intent == "Welcome" and not reply.handover
    assert reply.messages[0] == (TextPart(text="Hi! I am the Dialogflow bot."),)
    title, buttons = reply.messages[1]
    assert title == TextPart(text="Choose:")
    assert isinstance(buttons, QuickRepliesPart)
    assert [b.payload for b in buttons.replies] == ["Pricing", "Human"]

    priced = await bot(dialogflow).detect(
        BotQuery(session_id="conversation-7", text="pricing please")
    )
    assert [m[0].text for m in priced.messages] == ["Plans start at 10 EUR.", "Anything else?"]  # type: ignore[union-attr]
    assert dialogflow.requests[1].query_input.text.language_code == "en"


async def test_handover_by_action_payload_and_fields(dialogflow: FakeDialogflow) -> None:
    df = bot(dialogflow, environment="production")
    by_action = await df.detect(BotQuery(session_id="s", text="human"))
    assert by_action.handover and by_action.action == "handover"
    assert "/environments/production/users/-/sessions/s" in dialogflow.requests[0].session
    by_payload = await df.detect(BotQuery(session_id="s", text="sales"))
    assert by_payload.handover and by_payload.payload["team"] == "Sales"
    fields = await df.detect(BotQuery(session_id="s", text="plan"))
    assert not fields.handover and fields.payload == {"set_fields": {"plan": "pro"}}
    fallback = await df.detect(BotQuery(session_id="s", text="qwerty"))
    assert fallback.fallback and fallback.messages


async def test_timeouts_and_errors_raise_an_integration_error(dialogflow: FakeDialogflow) -> None:
    dialogflow.delay = 1.0
    with pytest.raises(IntegrationError, match="Dialogflow"):
        await bot(dialogflow, timeout=0.2).detect(BotQuery(session_id="s", text="hi"))
    dialogflow.delay = 0
    dialogflow.fail = grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(IntegrationError, match="fake Dialogflow failure"):
        await bot(dialogflow).detect(BotQuery(session_id="s", text="hi"))


@pytest.fixture
async def df_hub(
    aiohttp_client: Any, settings: Settings, plugins: Plugins, dialogflow: FakeDialogflow
) -> AsyncIterator[TestClient]:
    app = create_app(
        settings.model_copy(
            update={
                "dialogflow_project": "acme-agent",
                "dialogflow_endpoint": f"127.0.0.1:{dialogflow.port}",
                "dialogflow_timeout": 1.5,  # room for a loaded machine; the slow agent takes 3
            }
        ),
        plugins,
    )
    client = await aiohttp_client(app)
    yield client
    await closed_within(client, 15)


async def test_a_slow_agent_gets_a_fallback_reply_then_people(
    df_hub: TestClient, dialogflow: FakeDialogflow
) -> None:
    app = df_hub.server.app
    echo = await app[CHANNELS].get(await add_channel(app, "echo"))
    dialogflow.delay = 3.0
    await say(df_hub, app, echo, "hello")
    assert echo.sent[-1].parts[0].text == BOT_ERROR_TEXT  # never unanswered
    assert (await state(app))[0] == "bot"
    got = await say(df_hub, app, echo, "pricing")
    assert got[0] == BOT_ERROR_TEXT
    assert (await state(app))[0] == "waiting"  # two failures in a row: people take over
    metrics = await (await df_hub.get("/metrics")).text()
    assert "chancenter_bot_errors_total 2.0" in metrics
    assert 'chancenter_handovers_total{trigger="errors"} 1.0' in metrics


async def test_the_agent_saves_what_it_collected_into_custom_fields(
    df_hub: TestClient, dialogflow: FakeDialogflow
) -> None:
    app = df_hub.server.app
    echo = await app[CHANNELS].get(await add_channel(app, "echo"))
    async with app[DB].write() as conn:
        await create_field(conn, app[DEFAULT_SPACE], "plan", "", "choice", ["free", "pro"])
    await say(df_hub, app, echo, "hello")
    got = await say(df_hub, app, echo, "my plan")
    assert got == ["Noted."]
    async with app[DB].read() as conn:
        saved = (await conn.execute(sa.select(field_values.c.value_text))).scalar()
    assert saved == "pro"
    # a payload asking for people names a team and a note
    got = await say(df_hub, app, echo, "sales")
    assert got[0] == "A sales person will write."
    assert (await state(app))[0] == "waiting"


async def test_the_agent_can_start_a_survey(df_hub: TestClient, dialogflow: FakeDialogflow) -> None:
    app = df_hub.server.app
    echo = await app[CHANNELS].get(await add_channel(app, "echo"))
    async with app[DB].write() as conn:
        await conn.execute(
            surveys.insert().values(
                space_id=app[DEFAULT_SPACE],
                name="feedback",
                definition=dump(
                    parse_survey(
                        "name: feedback\nsteps:\n  - {id: score, type: question,"
                        " text: 'From 1 to 5?', answer: rating}\ncompleted_text: Merci!"
                    )
                ),
            )
        )
    await say(df_hub, app, echo, "hello")
    assert await say(df_hub, app, echo, "feedback") == ["Happy to hear it.", "From 1 to 5?"]
    asked = len(dialogflow.requests)
    assert await say(df_hub, app, echo, "4") == ["Merci!"]
    assert len(dialogflow.requests) == asked  # the flow took the answer, not the bot


async def test_the_environment_agent_serves_the_default_space_only(
    df_hub: TestClient, dialogflow: FakeDialogflow
) -> None:
    """Another organization's contacts never reach the default space's Dialogflow project:
    their space gets the built-in bot until it connects its own agent."""
    app = df_hub.server.app
    async with app[DB].write() as conn:
        rival = await create_space(conn, "Rival", "Rival", default=False, webchat=False)
    echo = await app[CHANNELS].get(await add_channel(app, "echo", rival.space_id))
    got = await say(df_hub, app, echo, "hello")
    assert got and got[0].startswith("Hi! I'm")  # the built-in bot's welcome
    await say(df_hub, app, echo, "pricing please")
    assert dialogflow.requests == []
    home = await app[CHANNELS].get(await add_channel(app, "echo"))
    assert await say(df_hub, app, home, "hello") == ["Hi! I am the Dialogflow bot.", "Choose:"]
    assert {r.session.split("/")[1] for r in dialogflow.requests} == {"acme-agent"}


async def test_a_reply_of_only_unsupported_kinds_is_a_miss_not_silence(
    df_hub: TestClient, dialogflow: FakeDialogflow
) -> None:
    """A carousel or speech-only answer shows nothing on a messaging channel: the contact
    gets the fallback text, and two such misses in a row hand over like other misses."""
    app = df_hub.server.app
    echo = await app[CHANNELS].get(await add_channel(app, "echo"))
    await say(df_hub, app, echo, "hello")
    assert await say(df_hub, app, echo, "carousel") == [NOT_UNDERSTOOD_TEXT]
    assert (await state(app))[0] == "bot"
    got = await say(df_hub, app, echo, "show the carousel")
    assert got[0] == NOT_UNDERSTOOD_TEXT
    assert (await state(app))[0] == "waiting"
    metrics = await (await df_hub.get("/metrics")).text()
    assert 'chancenter_handovers_total{trigger="fallbacks"} 1.0' in metrics


async def test_unsupported_kinds_leave_an_empty_reply_and_a_log_line(
    dialogflow: FakeDialogflow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="integrations.dialogflow")
    reply = await bot(dialogflow).detect(BotQuery(session_id="s", text="carousel"))
    assert reply.messages == () and not reply.fallback and reply.intent == "Catalogue"
    (record,) = [r for r in caplog.records if "cannot show" in r.message]
    assert record.kinds == ["carousel_select", "simple_responses"]  # type: ignore[attr-defined]
