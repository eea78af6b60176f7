"""The one interface every bot implements (the built-in bot, Dialogflow).

No third-party type crosses it: a bot takes a `BotQuery` and answers a `BotReply`.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import Field

from bot.model import Frozen, Part


class BotQuery(Frozen):
    """One turn. Exactly one of `text` or `event` is set.

    Example: `BotQuery(session_id="c-42", event="WELCOME", language="en")`.
    """

    session_id: str
    text: str | None = None
    event: str | None = None
    language: str | None = None


class BotReply(Frozen):
    """What the bot answered: messages in order, and what it asks of the hub."""

    intent: str | None = None
    confidence: float = 0.0
    action: str | None = None
    fallback: bool = False
    messages: tuple[tuple[Part, ...], ...] = ()
    handover: bool = Field(False, description="the bot asks for a human")
    payload: dict[str, Any] = Field(default_factory=dict)


class Bot(Protocol):
    # which bot answered, recorded on its messages: `builtin`, `dialogflow:<project>`
    name: str

    async def detect(self, query: BotQuery) -> BotReply: ...


class BotProvider(Protocol):
    """Which bot answers in a space (a space may have its own Dialogflow agent)."""

    async def for_space(self, space_id: int) -> Bot: ...

    def forget(self, space_id: int) -> None:
        """The space's integration changed: build its bot afresh next time."""
