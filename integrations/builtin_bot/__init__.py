"""The built-in offline bot: answers from a Dialogflow ES agent export, with no network."""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings
from integrations.builtin_bot.agent import load_agent
from integrations.builtin_bot.bot import BuiltinBot

SAMPLE_AGENT = Path(__file__).resolve().parent / "sample_agent"


def create_bot(settings: Settings) -> BuiltinBot:
    """Entry point `chancenter.bots:builtin`."""
    return BuiltinBot(load_agent(settings.agent_path or SAMPLE_AGENT))


__all__ = ["SAMPLE_AGENT", "BuiltinBot", "create_bot", "load_agent"]
