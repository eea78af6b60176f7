"""`BuiltinBot`: the `Bot` interface over a loaded agent export."""

from __future__ import annotations

import zlib

from bot.model import Part, TextPart
from bot.pipeline.bots import BotQuery, BotReply
from integrations.builtin_bot.agent import Agent, Intent
from integrations.builtin_bot.matcher import Matcher


class BuiltinBot:
    name = "builtin"

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._matcher = Matcher(agent)
        self._fallback = next((i for i in agent.intents if i.fallback), None)

    async def detect(self, query: BotQuery) -> BotReply:
        language = self._matcher.language(query.language)
        intent: Intent | None = None
        confidence = 0.0
        if query.event:
            intent = next((i for i in self.agent.intents if query.event in i.events), None)
            confidence = 1.0 if intent else 0.0
        elif query.text:
            match = self._matcher.match(query.text, language)
            if match and match.confidence >= self.agent.min_confidence:
                intent, confidence = match.intent, match.confidence
        if intent is None:
            intent = self._fallback
        if intent is None:
            return BotReply(fallback=True)
        return BotReply(
            intent=intent.name,
            confidence=round(confidence, 3),
            action=intent.action,
            fallback=intent.fallback,
            messages=self._messages(intent, language, query.session_id),
            handover=intent.handover,
            payload={k: v for r in intent.responses for k, v in r.payload.items()},
        )

    def _messages(
        self, intent: Intent, language: str, session_id: str
    ) -> tuple[tuple[Part, ...], ...]:
        """One message per text response; buttons ride on the message before them."""
        responses = [r for r in intent.responses if r.lang.split("-")[0] == language]
        if not responses:
            responses = [r for r in intent.responses if r.lang.split("-")[0] == self.agent.language]
        messages: list[list[Part]] = []
        for response in responses:
            parts: list[Part] = list(response.parts)
            if response.variants:
                # a stable choice per conversation, so a reply doesn't change on redelivery
                pick = zlib.crc32(f"{session_id}:{intent.name}".encode()) % len(response.variants)
                parts.insert(0, TextPart(text=response.variants[pick]))
            if not parts:
                continue
            if messages and not any(isinstance(p, TextPart) for p in parts):
                messages[-1].extend(parts)  # quick replies alone belong to the last text
            else:
                messages.append(parts)
        return tuple(tuple(m) for m in messages)
