"""A broadcast's message for one contact: its variables filled, its parts in order."""

from __future__ import annotations

from typing import Any

from bot.model import Part, QuickRepliesPart, TemplatePart, TextPart
from bot.workspace.shortcuts import fill, shortcut_parts
from broadcasts.definition import BroadcastMessage


def uses_fields(message: BroadcastMessage, shortcut: Any | None) -> bool:
    """Whether rendering needs the contacts' custom fields (read only then)."""
    texts = [message.text or "", shortcut.text if shortcut is not None else ""]
    if message.template is not None:
        texts += message.template.params
    return any("contact.fields." in text for text in texts)


def parts_for(
    message: BroadcastMessage, shortcut: Any | None, values: dict[str, str]
) -> list[Part]:
    """The parts for a contact whose variables are `values`; empty: nothing to say to them."""
    if message.template is not None:
        template = message.template
        params = tuple(fill(p, values) for p in template.params)
        return [TemplatePart(name=template.name, language=template.language, params=params)]
    parts: list[Part] = []
    if message.text is not None and (text := fill(message.text, values)).strip():
        parts.append(TextPart(text=text))
    if shortcut is not None:
        parts.extend(shortcut_parts(shortcut, values))
    parts.extend(message.media)
    if message.quick_replies and parts:
        parts.append(QuickRepliesPart(replies=tuple(message.quick_replies)))
    return parts
