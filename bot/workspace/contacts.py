"""Contacts' custom fields, tags and views: validation and space-scoped queries."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import InvalidPayload, NotFound
from bot.storage.tables import (
    contact_tags,
    contacts,
    field_definitions,
    field_values,
    identities,
    tags,
)
from bot.workspace.filters import STORAGE, FieldDef, Group, compile_filter
from bot.workspace.triggers import fire

KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9]{5,15}$")


async def field_defs(conn: AsyncConnection, space_id: int) -> dict[str, FieldDef]:
    rows = await conn.execute(
        sa.select(field_definitions.c.id, field_definitions.c.key, field_definitions.c.type).where(
            field_definitions.c.space_id == space_id
        )
    )
    return {r.key: FieldDef(id=r.id, key=r.key, type=r.type) for r in rows}


async def create_field(
    conn: AsyncConnection, space_id: int, key: str, label: str, type_: str, options: list[str]
) -> int:
    if not KEY.match(key):
        raise InvalidPayload("a field key is lowercase letters, digits and _, starting a letter")
    if type_ not in STORAGE:
        raise InvalidPayload(f"field type must be one of {', '.join(STORAGE)}")
    if type_ == "choice" and not options:
        raise InvalidPayload("a choice field needs its options")
    if key in await field_defs(conn, space_id):
        raise InvalidPayload(f"the field {key!r} already exists in this space")
    return (
        await conn.execute(
            field_definitions.insert()
            .values(space_id=space_id, key=key, label=label or key, type=type_, options=options)
            .returning(field_definitions.c.id)
        )
    ).scalar_one()


async def check_options_cover_values(
    conn: AsyncConnection, field_id: int, options: list[str]
) -> None:
    """A choice can only be dropped once no contact holds it (their value would turn invalid)."""
    if not options:
        raise InvalidPayload("a choice field needs its options")
    used = (
        await conn.execute(
            sa.select(field_values.c.value_text)
            .where(field_values.c.field_id == field_id)
            .where(field_values.c.value_text.not_in(options))
            .limit(1)
        )
    ).scalar()
    if used is not None:
        raise InvalidPayload(
            f"contacts still hold {used!r}; change their values first, or keep that option"
        )


def stored_value(type_: str, options: list[str], key: str, value: Any) -> dict[str, Any]:
    """The typed columns for `value`, or `InvalidPayload` saying what a valid one looks like."""

    def bad(expected: str) -> InvalidPayload:
        return InvalidPayload(f"field {key!r} is {type_}: {value!r} is not {expected}")

    empty = {"value_text": None, "value_number": None, "value_date": None}
    if type_ == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise bad("a number")
        try:
            return {**empty, "value_number": float(value)}
        except ValueError:
            raise bad("a number") from None
    if type_ == "boolean":
        if not isinstance(value, bool):
            raise bad("true or false")
        return {**empty, "value_number": float(value)}
    if type_ == "date":
        try:
            parsed = date.fromisoformat(str(value))
        except ValueError:
            raise bad("a date like 2026-01-31") from None
        return {**empty, "value_date": datetime(parsed.year, parsed.month, parsed.day)}
    text = str(value).strip() if isinstance(value, str | int | float) else None
    if not text or len(text) > 500:
        raise bad("text of 1 to 500 characters")
    if type_ == "email" and not EMAIL.match(text):
        raise bad("an email address")
    if type_ == "phone":
        text = re.sub(r"[\s().-]", "", text)
        if not PHONE.match(text):
            raise bad("a phone number like +351 912 345 678")
    if type_ == "url" and not text.startswith(("http://", "https://")):
        raise bad("an http(s) URL")
    if type_ == "choice" and text not in options:
        raise bad(f"one of {', '.join(options)}")
    return {**empty, "value_text": text}


async def field_definition(conn: AsyncConnection, space_id: int, key: str) -> Any:
    row = (
        await conn.execute(
            sa.select(field_definitions)
            .where(field_definitions.c.space_id == space_id)
            .where(field_definitions.c.key == key)
        )
    ).first()
    if row is None:
        raise NotFound(f"no custom field {key!r} in this space")
    return row


async def set_field(
    conn: AsyncConnection, space_id: int, contact_id: int, key: str, value: Any, depth: int = 0
) -> None:
    """Write (None: clear) one custom field; automations on `field_changed` hear of it."""
    await get_contact(conn, space_id, contact_id)
    row = await field_definition(conn, space_id, key)
    await conn.execute(
        field_values.delete()
        .where(field_values.c.contact_id == contact_id)
        .where(field_values.c.field_id == row.id)
    )
    if value is not None:
        typed = stored_value(row.type, row.options or [], key, value)
        await conn.execute(
            field_values.insert().values(contact_id=contact_id, field_id=row.id, **typed)
        )
    await fire(conn, space_id, "field_changed", contact_id=contact_id, depth=depth, field=key)


async def tag(
    conn: AsyncConnection, space_id: int, contact_id: int, names: list[str], depth: int = 0
) -> None:
    """Add tags (created on first use); automations on `tag_added` hear of new ones."""
    await get_contact(conn, space_id, contact_id)
    for name in names:
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidPayload("a tag is 1 to 100 characters")
        tag_id = (
            await conn.execute(
                sa.select(tags.c.id).where(tags.c.space_id == space_id).where(tags.c.name == name)
            )
        ).scalar()
        if tag_id is None:
            tag_id = (
                await conn.execute(
                    tags.insert().values(space_id=space_id, name=name).returning(tags.c.id)
                )
            ).scalar_one()
        found = (
            await conn.execute(
                sa.select(contact_tags.c.tag_id)
                .where(contact_tags.c.tag_id == tag_id)
                .where(contact_tags.c.contact_id == contact_id)
            )
        ).first()
        if found is None:
            await conn.execute(contact_tags.insert().values(tag_id=tag_id, contact_id=contact_id))
            await fire(conn, space_id, "tag_added", contact_id=contact_id, depth=depth, tag=name)


async def untag(
    conn: AsyncConnection, space_id: int, contact_id: int, name: str, depth: int = 0
) -> None:
    await get_contact(conn, space_id, contact_id)
    removed = await conn.execute(
        contact_tags.delete()
        .where(contact_tags.c.contact_id == contact_id)
        .where(
            contact_tags.c.tag_id.in_(
                sa.select(tags.c.id).where(tags.c.space_id == space_id).where(tags.c.name == name)
            )
        )
    )
    if removed.rowcount:
        await fire(conn, space_id, "tag_removed", contact_id=contact_id, depth=depth, tag=name)


async def find(
    conn: AsyncConnection,
    space_id: int,
    group: Group | None,
    search: str | None,
    limit: int,
    before: int | None,
    with_count: bool,
) -> tuple[list[Any], int | None]:
    """A page of contacts, newest first (keyset on id), and optionally how many match."""
    fields = await field_defs(conn, space_id)
    group = group or Group(all=())
    searched: Any = sa.true()
    if search:
        needle = search.strip()
        searched = sa.or_(
            contacts.c.name.contains(needle, autoescape=True),
            contacts.c.phone.startswith(needle, autoescape=True),
            contacts.c.email.startswith(needle, autoescape=True),
        )
    where = sa.and_(compile_filter(group, space_id, fields), searched)
    query = sa.select(contacts).where(where).order_by(contacts.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(contacts.c.id < before)
    rows = list(await conn.execute(query))
    total = None
    if with_count:
        counting = sa.and_(compile_filter(group, space_id, fields, for_page=False), searched)
        total = (
            await conn.execute(sa.select(sa.func.count()).select_from(contacts).where(counting))
        ).scalar_one()
    return rows, total


async def get_contact(conn: AsyncConnection, space_id: int, contact_id: int) -> Any:
    """The contact's row, or `NotFound`: another space's contact does not exist for the caller."""
    row = (
        await conn.execute(
            sa.select(contacts)
            .where(contacts.c.id == contact_id)
            .where(contacts.c.space_id == space_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no contact {contact_id} in this space")
    return row


async def fields_of(conn: AsyncConnection, contact_id: int) -> dict[str, Any]:
    """A contact's custom field values by key: str, float, bool or datetime."""
    return {key: value for _, key, value in await fields_of_many(conn, [contact_id])}


async def fields_of_many(
    conn: AsyncConnection, contact_ids: list[int]
) -> list[tuple[int, str, Any]]:
    """`(contact id, key, value)` for every field value of these contacts, by key."""
    rows = await conn.execute(
        sa.select(
            field_values.c.contact_id,
            field_definitions.c.key,
            field_definitions.c.type,
            field_values.c.value_text,
            field_values.c.value_number,
            field_values.c.value_date,
        )
        .join(field_values, field_values.c.field_id == field_definitions.c.id)
        .where(field_values.c.contact_id.in_(contact_ids))
        .order_by(field_definitions.c.key)
    )
    found = []
    for r in rows:
        if r.value_text is not None:
            value: Any = r.value_text
        elif r.value_date is not None:
            value = r.value_date
        elif r.value_number is not None:
            value = bool(r.value_number) if r.type == "boolean" else r.value_number
        else:
            continue
        found.append((r.contact_id, r.key, value))
    return found


async def identities_of(conn: AsyncConnection, contact_id: int) -> list[dict[str, str]]:
    """Where the contact is reachable: `{"channel_id", "external_id"}` per identity."""
    rows = await conn.execute(
        sa.select(identities.c.channel_id, identities.c.external_id).where(
            identities.c.contact_id == contact_id
        )
    )
    return [{"channel_id": r.channel_id, "external_id": r.external_id} for r in rows]


async def tags_of_many(conn: AsyncConnection, contact_ids: list[int]) -> list[tuple[int, str]]:
    """`(contact id, tag name)` for these contacts, by name."""
    rows = await conn.execute(
        sa.select(contact_tags.c.contact_id, tags.c.name)
        .join(tags, tags.c.id == contact_tags.c.tag_id)
        .where(contact_tags.c.contact_id.in_(contact_ids))
        .order_by(tags.c.name)
    )
    return [(r.contact_id, r.name) for r in rows]


async def tags_of(conn: AsyncConnection, contact_id: int) -> list[str]:
    rows = await conn.execute(
        sa.select(tags.c.name)
        .join(contact_tags, contact_tags.c.tag_id == tags.c.id)
        .where(contact_tags.c.contact_id == contact_id)
        .order_by(tags.c.name)
    )
    return list(rows.scalars())


def shown(value: Any) -> str:
    """A field value or an answer as people read it: 12 not 12.0 (nor 1.2e+07), yes/no, a
    date without its time, a list joined, nothing for no value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, list):
        return ", ".join(map(shown, value))
    return str(value)
