"""Fuzzy intent matching over training phrases, with language-aware normalization
(`normalize` is `bot.workspace.matching`'s, shared with the surveys' answers)."""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz, process

from bot.workspace.matching import normalize
from integrations.builtin_bot.agent import Agent, Intent


def _score(query: str, phrase: str, **_: object) -> float:
    # ratio rewards the whole sentence being alike; token_set_ratio rewards a phrase
    # contained in a longer message ("what are your opening hours today?").
    return 0.5 * fuzz.ratio(query, phrase) + 0.5 * fuzz.token_set_ratio(query, phrase)


@dataclass(frozen=True)
class Match:
    intent: Intent
    confidence: float  # 0..1


class Matcher:
    """Index of normalized phrases per language, built once per agent."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._phrases: dict[str, tuple[list[str], list[Intent]]] = {}
        for intent in agent.intents:
            for lang, phrases in intent.phrases.items():
                texts, owners = self._phrases.setdefault(_base(lang), ([], []))
                for phrase in phrases:
                    if norm := normalize(phrase):
                        texts.append(norm)
                        owners.append(intent)

    def language(self, requested: str | None) -> str:
        """The agent language to use: the requested one when supported, else the default."""
        if requested and _base(requested) in {_base(lang) for lang in self._agent.languages}:
            return _base(requested)
        return _base(self._agent.language)

    def match(self, text: str, language: str) -> Match | None:
        query = normalize(text)
        texts, owners = self._phrases.get(language) or self._phrases.get(
            _base(self._agent.language), ([], [])
        )
        if not query or not texts:
            return None
        best = process.extractOne(query, texts, scorer=_score)
        if best is None:
            return None
        _, score, index = best
        return Match(owners[index], score / 100)


def _base(lang: str) -> str:
    return lang.split("-")[0].lower()
