"""A broadcast's message for one contact: its variables filled, its parts in order.

A shortcut's message was copied into the broadcast when it started (`store`), so here a
message is text, media and quick replies, or a WhatsApp template."""

from __future__ import annotations

from bot.model import Part, QuickRepliesPart, TemplatePart, TextPart
from bot.workspace.shortcuts import fill
from broadcasts.definition import BroadcastMessage


def uses_fields(message: BroadcastMessage) -> bool:
    """Whether rendering needs the contacts' custom fields (read only then)."""
    texts = [message.text or "", *(message.template.params if message.template else ())]
    return any("contact.fields." in text for text in texts)


def parts_for(message: BroadcastMessage, values: dict[str, str]) -> list[Part]:
    """The parts for a contact whose variables are `values`; empty: nothing to say to them."""
    if message.template is not None:
        template = message.template
        params = tuple(fill(p, values) for p in template.params)
        return [TemplatePart(name=template.name, language=template.language, params=params)]
    parts: list[Part] = []
    if message.text is not None and (text := fill(message.text, values)).strip():
        parts.append(TextPart(text=text))
    parts.extend(message.media)
    if message.quick_replies and parts:
        parts.append(QuickRepliesPart(replies=tuple(message.quick_replies)))
    return parts
