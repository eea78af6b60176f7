"""Which answers may be saved into which custom fields, checked when a survey is saved."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import InvalidPayload
from bot.storage.tables import field_definitions
from surveys.definition import QuestionStep, Survey

# answer type -> the field types that can hold it
FITS = {
    "text": {"text"},
    "number": {"number"},
    "email": {"email", "text"},
    "phone": {"phone", "text"},
    "date": {"date"},
    "choice": {"choice", "text"},
    "rating": {"number"},
    "yes_no": {"boolean"},
    "location": {"text"},
    "file": {"url", "text"},
}


async def check_fields(conn: AsyncConnection, space_id: int, survey: Survey) -> None:
    rows = await conn.execute(
        sa.select(field_definitions).where(field_definitions.c.space_id == space_id)
    )
    defs = {r.key: r for r in rows}
    for step in survey.steps:
        if not isinstance(step, QuestionStep) or step.save_to is None:
            continue
        where = f"step {step.id!r}, save_to"
        field = defs.get(step.save_to)
        if field is None:
            known = ", ".join(sorted(defs)) or "none yet"
            raise InvalidPayload(f"{where}: no custom field {step.save_to!r} (defined: {known})")
        fits = FITS[step.answer] - ({"choice"} if step.multiple else set())
        if field.type not in fits:
            raise InvalidPayload(
                f"{where}: a {step.answer} answer cannot go into {step.save_to!r}, "
                f"whose type is {field.type} (use a {' or '.join(sorted(fits))} field)"
            )
        if field.type == "choice" and not set(step.options) <= set(field.options or []):
            missing = ", ".join(sorted(set(step.options) - set(field.options or [])))
            raise InvalidPayload(f"{where}: {step.save_to!r} has no option {missing}")


def stored(value: Any) -> Any:
    """An answer as its field stores it (a multiple choice as one text)."""
    return ", ".join(value) if isinstance(value, list) else value
