"""The Dialogflow bot through the real async client, against a local DetectIntent server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from bot.bots import BotQuery
from bot.errors import IntegrationError
from bot.model import QuickRepliesPart, TextPart
from integrations.dialogflow import DialogflowBot
from tests.fakes.dialogflow import FakeDialogflow, serve


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
