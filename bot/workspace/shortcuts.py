"""Shortcuts: message templates agents send, with `{{contact.first_name}}`-style variables.

A variable may say what to write when it is empty, `{{contact.first_name | default: "there"}}`,
so a contact without a name reads "Hi there", not "Hi ,".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import InvalidPayload, NotFound
from bot.model import MediaPart, Part, QuickRepliesPart, QuickReply, TextPart
from bot.storage.tables import (
    shortcuts,
    users,
)
from bot.workspace.contacts import fields_of, get_contact, shown

VARIABLE = re.compile(
    r"\{\{\s*([a-z_][a-z0-9_.]*)\s*"
    r"(?:\|\s*default:\s*(?:\"([^\"]*)\"|'([^']*)')\s*)?\}\}"
)
KNOWN = (
    "contact.name",
    "contact.first_name",
    "contact.phone",
    "contact.email",
    "contact.language",
    "contact.fields.<key>",
    "agent.name",
)


def variables(text: str) -> list[str]:
    return [m.group(1) for m in VARIABLE.finditer(text)]


def fill(text: str, values: dict[str, str]) -> str:
    """The template with each variable's value, or its default when the value is empty."""

    def value(m: re.Match[str]) -> str:
        return values.get(m.group(1)) or m.group(2) or m.group(3) or ""

    return VARIABLE.sub(value, text)


def check(text: str, field_keys: set[str]) -> None:
    """Refuse a template that names a variable we cannot fill."""
    for name in variables(text):
        if name.startswith("contact.fields."):
            if name.removeprefix("contact.fields.") not in field_keys:
                raise InvalidPayload(
                    f"unknown variable {{{{{name}}}}}: no custom field "
                    f"{name.removeprefix('contact.fields.')!r} in this space"
                )
        elif name not in KNOWN:
            raise InvalidPayload(f"unknown variable {{{{{name}}}}}; use one of " + ", ".join(KNOWN))


async def render(
    conn: AsyncConnection,
    space_id: int,
    shortcut_id: int,
    contact_id: int,
    agent_id: int | None,
) -> list[Part]:
    row = (
        await conn.execute(
            sa.select(shortcuts)
            .where(shortcuts.c.id == shortcut_id)
            .where(shortcuts.c.space_id == space_id)
        )
    ).first()
    if row is None or (row.user_id is not None and row.user_id != agent_id):
        raise NotFound(f"no shortcut {shortcut_id} in this space")
    contact = await get_contact(conn, space_id, contact_id)
    parts = shortcut_parts(row, await template_values(conn, contact, agent_id))
    if not parts:
        raise InvalidPayload("the shortcut renders to nothing for this contact")
    return parts


def shortcut_parts(row: Any, values: dict[str, str]) -> list[Part]:
    """A shortcut's message for one contact (`values` from `template_values`)."""
    text = fill(row.text, values)
    parts: list[Part] = [TextPart(text=text)] if text.strip() else []
    if row.attachment_url:
        parts.append(MediaPart(type="file", url=row.attachment_url))
    if row.quick_replies:
        parts.append(
            QuickRepliesPart(
                replies=tuple(QuickReply(title=q, payload=q) for q in row.quick_replies)
            )
        )
    return parts


async def template_values(
    conn: AsyncConnection, contact: Any, agent_id: int | None
) -> dict[str, str]:
    values = contact_values(contact, await fields_of(conn, contact.id))
    if agent_id is not None:
        agent = (await conn.execute(sa.select(users.c.name).where(users.c.id == agent_id))).scalar()
        values["agent.name"] = agent or ""
    return values


def contact_values(contact: Any, fields: Mapping[str, Any]) -> dict[str, str]:
    """The `contact.*` variables of a contact row and its custom field values."""
    name = contact.name or ""
    values = {
        "contact.name": name,
        "contact.first_name": name.split(" ")[0] if name else "",
        "contact.phone": contact.phone or "",
        "contact.email": contact.email or "",
        "contact.language": contact.language or "",
    }
    for key, value in fields.items():
        values[f"contact.fields.{key}"] = shown(value)
    return values
