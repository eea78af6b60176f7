"""Reading a Dialogflow ES agent export: `agent.json`, `intents/*.json` and
`intents/*_usersays_<lang>.json`, into plain frozen models.
"""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from bot.errors import ConfigError
from bot.model import Frozen, MediaPart, Part, QuickRepliesPart, QuickReply, TextPart

log = logging.getLogger(__name__)

HANDOVER_ACTIONS = frozenset({"handover", "live_agent_handoff"})


class Response(Frozen):
    """One Dialogflow response message, already in our parts (`payload` for custom ones)."""

    lang: str
    variants: tuple[str, ...] = ()  # text: Dialogflow picks one of them
    parts: tuple[Part, ...] = ()
    payload: dict[str, Any] = Field(default_factory=dict)


class Intent(Frozen):
    name: str
    action: str | None = None
    events: frozenset[str] = frozenset()
    fallback: bool = False
    priority: int = 500000
    phrases: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # lang -> training phrases
    responses: tuple[Response, ...] = ()

    @property
    def handover(self) -> bool:
        return self.action in HANDOVER_ACTIONS or any(
            r.payload.get("handover") is True for r in self.responses
        )


class Agent(Frozen):
    name: str
    language: str
    languages: tuple[str, ...]
    min_confidence: float
    intents: tuple[Intent, ...]


def load_agent(path: Path) -> Agent:
    """Load an export folder; errors name the file and say what is wrong."""
    path = Path(path)
    agent_file = path / "agent.json"
    if not agent_file.is_file():
        raise ConfigError(
            f"{path} is not a Dialogflow agent export: {agent_file.name} is missing "
            "(export the agent as a ZIP in the Dialogflow console and unzip it)"
        )
    meta = _read_json(agent_file)
    language = meta.get("language", "en")
    intents = []
    for file in sorted((path / "intents").glob("*.json")):
        if "_usersays_" in file.name:
            continue
        intents.append(_intent(file, language))
    return Agent(
        name=meta.get("displayName") or meta.get("name") or path.name,
        language=language,
        languages=(language, *meta.get("supportedLanguages", [])),
        # Dialogflow's own default threshold (0.3) suits its ML; fuzzy string scores need more.
        min_confidence=max(float(meta.get("mlMinConfidence", 0.3)), 0.6),
        intents=tuple(intents),
    )


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from None


def _intent(file: Path, default_lang: str) -> Intent:
    data = _read_json(file)
    phrases: dict[str, tuple[str, ...]] = {}
    for says in file.parent.glob(f"{glob.escape(file.stem)}_usersays_*.json"):
        lang = says.stem.rsplit("_usersays_", 1)[1]
        phrases[lang] = tuple(
            "".join(chunk.get("text", "") for chunk in item.get("data", []))
            for item in _read_json(says)
        )
    response = (data.get("responses") or [{}])[0]
    try:
        return Intent(
            name=data.get("name", file.stem),
            action=response.get("action") or None,
            events=frozenset(e["name"] for e in data.get("events", [])),
            fallback=bool(data.get("fallbackIntent", False)),
            priority=int(data.get("priority", 500000)),
            phrases=phrases,
            responses=tuple(
                r
                for m in response.get("messages", [])
                if (r := _response(m, default_lang)) is not None
            ),
        )
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{file}: not a valid Dialogflow intent: {exc}") from None


def _response(message: dict[str, Any], default_lang: str) -> Response | None:
    """Map Dialogflow's message types (0 text, 1 card, 2 quick replies, 3 image, 4 payload)."""
    kind = str(message.get("type", "0"))
    lang = message.get("lang", default_lang)
    if kind == "0":
        speech = message.get("speech", [])
        variants = (speech,) if isinstance(speech, str) else tuple(speech)
        return Response(lang=lang, variants=tuple(v for v in variants if v))
    if kind == "2":
        replies = tuple(QuickReply(title=r, payload=r) for r in message.get("replies", []))
        title = message.get("title") or ""
        parts: list[Part] = [TextPart(text=title)] if title else []
        if replies:
            parts.append(QuickRepliesPart(replies=replies))
        return Response(lang=lang, parts=tuple(parts))
    if kind == "3" and message.get("imageUrl"):
        return Response(lang=lang, parts=(MediaPart(type="image", url=message["imageUrl"]),))
    if kind == "1":
        parts = [TextPart(text=t) for t in (message.get("title"), message.get("subtitle")) if t]
        if message.get("imageUrl"):
            parts.insert(0, MediaPart(type="image", url=message["imageUrl"]))
        buttons = tuple(
            QuickReply(title=b["text"], payload=b.get("postback") or b["text"])
            for b in message.get("buttons", [])
        )
        if buttons:
            parts.append(QuickRepliesPart(replies=buttons))
        return Response(lang=lang, parts=tuple(parts))
    if kind == "4":
        payload = message.get("payload") or {}
        return Response(lang=lang, payload=payload, parts=_payload_parts(payload))
    log.debug("response type skipped", extra={"type": kind})
    return None


def _payload_parts(payload: dict[str, Any]) -> tuple[Part, ...]:
    """Our custom payload: `{"quick_replies": ["Pricing", {"title": .., "payload": ..}]}`."""
    replies = tuple(
        QuickReply(title=r, payload=r) if isinstance(r, str) else QuickReply(**r)
        for r in payload.get("quick_replies", [])
    )
    return (QuickRepliesPart(replies=replies),) if replies else ()
