"""What an automation names in its space (fields, teams, members, surveys, shortcuts,
views) must exist: checked when it is saved, and again when any of them may have gone.

`problem` answers with the first broken reference, named by its path
(`actions[1].assign.team: no team "Sales" in this space`), or None.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from automations.definition import (
    Automation,
    AutomationAction,
    OnDate,
    OnField,
    OnSchedule,
    OnSurvey,
)
from bot.errors import InvalidPayload
from bot.storage.tables import (
    field_definitions,
    shortcuts,
    space_members,
    surveys,
    teams,
    users,
    views,
)
from bot.workspace.contacts import stored_value
from bot.workspace.filters import Condition, Group
from bot.workspace.shortcuts import check as check_template


class Names:
    """The space's names, read once for a check."""

    def __init__(self, rows: dict[str, Any]) -> None:
        self.fields: dict[str, Any] = rows["fields"]
        self.teams: set[str] = rows["teams"]
        self.emails: set[str] = rows["emails"]
        self.surveys: set[str] = rows["surveys"]
        self.shortcuts: set[str] = rows["shortcuts"]
        self.views: set[int] = rows["views"]


async def names_in(conn: AsyncConnection, space_id: int) -> Names:
    async def column(query: sa.Select[Any]) -> set[Any]:
        return set((await conn.execute(query)).scalars())

    fields = {
        row.key: row
        for row in await conn.execute(
            sa.select(field_definitions).where(field_definitions.c.space_id == space_id)
        )
    }
    return Names(
        {
            "fields": fields,
            "teams": await column(sa.select(teams.c.name).where(teams.c.space_id == space_id)),
            "emails": await column(
                sa.select(users.c.email)
                .join(space_members, space_members.c.user_id == users.c.id)
                .where(space_members.c.space_id == space_id)
            ),
            "surveys": await column(
                sa.select(surveys.c.name).where(surveys.c.space_id == space_id)
            ),
            "shortcuts": await column(
                sa.select(shortcuts.c.name)
                .where(shortcuts.c.space_id == space_id)
                .where(shortcuts.c.user_id.is_(None))
            ),
            "views": await column(sa.select(views.c.id).where(views.c.space_id == space_id)),
        }
    )


async def problem(conn: AsyncConnection, space_id: int, automation: Automation) -> str | None:
    return first_problem(automation, await names_in(conn, space_id))


def first_problem(automation: Automation, names: Names) -> str | None:
    """Against names read once (`names_in`): checking a space's many automations at once."""
    for where, message in _problems(automation, names):
        return f"{where}: {message}"
    return None


async def check(conn: AsyncConnection, space_id: int, automation: Automation) -> None:
    """Raise a 422-shaped `InvalidPayload` naming the first broken reference."""
    found = await problem(conn, space_id, automation)
    if found is not None:
        raise InvalidPayload(found)


def _problems(automation: Automation, names: Names) -> Iterator[tuple[str, str]]:
    trigger = automation.trigger
    if isinstance(trigger, OnField | OnDate) and trigger.field not in names.fields:
        yield "trigger.field", f"no custom field {trigger.field!r} in this space"
    dated = isinstance(trigger, OnDate) and trigger.field in names.fields
    if dated and names.fields[trigger.field].type != "date":  # type: ignore[union-attr]
        yield "trigger.field", f"{trigger.field!r} is not a date field"
    if isinstance(trigger, OnSurvey) and trigger.survey and trigger.survey not in names.surveys:
        yield "trigger.survey", f"no survey {trigger.survey!r} in this space"
    if isinstance(trigger, OnSchedule) and trigger.view_id not in names.views:
        yield "trigger.view_id", f"no view {trigger.view_id} in this space"
    if automation.conditions is not None:
        yield from _conditions(automation.conditions, "conditions", names)
    yield from _actions(automation.actions, "actions", names)


def _conditions(group: Group, where: str, names: Names) -> Iterator[tuple[str, str]]:
    key = "all" if group.all is not None else "any"
    for n, item in enumerate(getattr(group, key) or ()):
        here = f"{where}.{key}[{n}]"
        if isinstance(item, Group):
            yield from _conditions(item, here, names)
        elif isinstance(item, Condition):
            if item.field.startswith("answers."):
                yield f"{here}.field", "answers.<step> exist only inside a survey"
            elif item.field.startswith("fields.") and item.field[7:] not in names.fields:
                yield f"{here}.field", f"no custom field {item.field[7:]!r} in this space"


def _actions(
    actions: list[AutomationAction], where: str, names: Names
) -> Iterator[tuple[str, str]]:
    for n, action in enumerate(actions):
        here = f"{where}[{n}]"
        if isinstance(action.send_message, str):
            try:
                check_template(action.send_message, set(names.fields))
            except InvalidPayload as exc:
                yield f"{here}.send_message", str(exc)
        elif action.send_message is not None:
            if action.send_message.shortcut not in names.shortcuts:
                name = action.send_message.shortcut
                yield f"{here}.send_message.shortcut", f"no shared shortcut {name!r}"
        elif action.assign is not None:
            if action.assign.team is not None and action.assign.team not in names.teams:
                yield f"{here}.assign.team", f"no team {action.assign.team!r} in this space"
            if action.assign.user is not None and action.assign.user not in names.emails:
                yield f"{here}.assign.user", f"no member {action.assign.user!r} in this space"
        elif action.hand_over is not None and action.hand_over is not True:
            team = action.hand_over.team
            if team is not None and team not in names.teams:
                yield f"{here}.hand_over.team", f"no team {team!r} in this space"
        elif action.set_field is not None:
            key, value = next(iter(action.set_field.items()))
            field = names.fields.get(key)
            if field is None:
                yield f"{here}.set_field", f"no custom field {key!r} in this space"
            elif value is not None:
                try:
                    stored_value(field.type, field.options or [], key, value)
                except InvalidPayload as exc:
                    yield f"{here}.set_field.{key}", str(exc)
        elif action.start_survey is not None and action.start_survey not in names.surveys:
            yield f"{here}.start_survey", f"no survey {action.start_survey!r} in this space"
        elif action.branch is not None:
            yield from _conditions(action.branch.when, f"{here}.branch.if", names)
            yield from _actions(action.branch.then, f"{here}.branch.then", names)
            yield from _actions(action.branch.else_, f"{here}.branch.else", names)
