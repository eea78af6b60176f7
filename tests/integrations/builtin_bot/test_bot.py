"""The built-in bot over the bundled sample agent and over small exports made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.model import QuickRepliesPart, TextPart
from bot.pipeline.bots import BotQuery
from integrations.builtin_bot import SAMPLE_AGENT, BuiltinBot, load_agent
from integrations.builtin_bot.matcher import normalize


@pytest.fixture(scope="module")
def bot() -> BuiltinBot:
    return BuiltinBot(load_agent(SAMPLE_AGENT))


async def ask(bot: BuiltinBot, text: str, language: str | None = None):
    return await bot.detect(BotQuery(session_id="s", text=text, language=language))


def first_text(reply) -> str:
    return next(p.text for m in reply.messages for p in m if isinstance(p, TextPart))


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hi", "Default Welcome Intent"),
        ("Hello!!", "Default Welcome Intent"),
        ("What are your opening hours?", "opening.hours"),
        ("whats ur opening hours", "opening.hours"),
        ("are you open on Saturday?", "opening.hours"),
        ("pricng", "pricing"),  # misspelt
        ("How much does it cost?", "pricing"),
        ("I want to talk to a human please", "talk.to.human"),
    ],
)
async def test_training_phrases_match_fuzzily(bot: BuiltinBot, text: str, intent: str) -> None:
    reply = await ask(bot, text)
    assert reply.intent == intent, (text, reply.intent, reply.confidence)
    assert reply.confidence >= 0.6


async def test_gibberish_falls_back(bot: BuiltinBot) -> None:
    reply = await ask(bot, "qwxz blorptangle frobnicate")
    assert reply.fallback and reply.intent == "Default Fallback Intent"
    assert first_text(reply).startswith("Sorry, I didn't get that")


async def test_welcome_event_answers_with_text_and_quick_replies(bot: BuiltinBot) -> None:
    reply = await bot.detect(BotQuery(session_id="s", event="WELCOME"))
    assert reply.intent == "Default Welcome Intent" and reply.confidence == 1.0
    (message,) = reply.messages
    assert isinstance(message[0], TextPart)
    assert isinstance(message[1], QuickRepliesPart)
    assert [r.title for r in message[1].replies] == ["Opening hours", "Pricing", "Talk to a human"]


async def test_handover_action_is_reported(bot: BuiltinBot) -> None:
    assert (await ask(bot, "talk to a human")).handover is True
    assert (await ask(bot, "pricing")).handover is False


async def test_language_aware(bot: BuiltinBot) -> None:
    reply = await ask(bot, "¿Cuál es vuestro HORARIO?", language="es-ES")
    assert reply.intent == "opening.hours"
    assert first_text(reply).startswith("Abrimos de lunes a viernes")
    # an unsupported language uses the agent's default
    assert first_text(await ask(bot, "pricing", language="fr")).startswith("Starter is free")


def test_normalize_drops_case_accents_and_punctuation() -> None:
    assert normalize("¿Qué HORARIO tenéis?!") == "que horario teneis"


def write_agent(root: Path, intents: dict[str, dict], says: dict[str, list[str]]) -> Path:
    (root / "intents").mkdir(parents=True)
    (root / "agent.json").write_text(json.dumps({"language": "en"}))
    for name, data in intents.items():
        (root / "intents" / f"{name}.json").write_text(json.dumps({"name": name, **data}))
    for name, phrases in says.items():
        (root / "intents" / f"{name}_usersays_en.json").write_text(
            json.dumps([{"data": [{"text": p}]} for p in phrases])
        )
    return root


async def test_payload_handover_and_dialogflow_message_types(tmp_path: Path) -> None:
    agent = write_agent(
        tmp_path,
        {
            "refund": {
                "responses": [
                    {
                        "messages": [
                            {"type": 0, "lang": "en", "speech": "Let me get someone."},
                            {
                                "type": 4,
                                "lang": "en",
                                "payload": {"handover": True, "team": "billing"},
                            },
                            {"type": 2, "lang": "en", "title": "Or pick", "replies": ["Status"]},
                            {"type": 3, "lang": "en", "imageUrl": "https://example.com/r.png"},
                        ]
                    }
                ]
            }
        },
        {"refund": ["I want a refund", "give me my money back"]},
    )
    reply = await BuiltinBot(load_agent(agent)).detect(BotQuery(session_id="s", text="refund"))
    assert reply.handover is True and reply.payload["team"] == "billing"
    kinds = [[p.type for p in m] for m in reply.messages]
    assert kinds == [["text"], ["text", "quick_replies", "image"]]
    # with no fallback intent, an unknown text answers nothing rather than failing
    silent = await BuiltinBot(load_agent(agent)).detect(BotQuery(session_id="s", text="zzzz"))
    assert silent.fallback and silent.messages == ()


def test_a_folder_that_is_not_an_export_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent\.json is missing"):
        load_agent(tmp_path)
    (tmp_path / "agent.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot read"):
        load_agent(tmp_path)
