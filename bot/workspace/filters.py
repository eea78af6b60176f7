"""The filter language over contacts, compiled to SQL (never applied in Python).

Views use it now; automations and broadcasts will reuse it. A filter is a group::

    {"all": [{"field": "tags", "op": "has_tag", "value": "vip"},
             {"any": [{"field": "fields.plan", "op": "is", "value": "pro"},
                      {"field": "last_message_at", "op": "within_last", "value": "7d"}]}]}

Fields: built-ins (name, phone, email, language, status, channel, assignee, team,
created_at, last_message_at, unsubscribed_at), `tags`, and custom fields as `fields.<key>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Union

import sqlalchemy as sa
from pydantic import ConfigDict, Field, field_validator, model_validator
from sqlalchemy.sql.elements import ColumnElement

from bot.clock import now
from bot.errors import InvalidPayload
from bot.model import Frozen
from bot.storage.tables import channels, contact_tags, contacts, field_values, identities, tags

Op = Literal[
    "is",
    "is_not",
    "contains",
    "starts_with",
    "gt",
    "lt",
    "between",
    "is_set",
    "is_not_set",
    "has_tag",
    "has_any_tag",
    "has_no_tag",
    "before",
    "after",
    "within_last",
]
OPS: dict[str, frozenset[str]] = {
    "text": frozenset({"is", "is_not", "contains", "starts_with", "is_set", "is_not_set"}),
    "number": frozenset({"is", "is_not", "gt", "lt", "between", "is_set", "is_not_set"}),
    "date": frozenset({"before", "after", "between", "within_last", "is_set", "is_not_set"}),
    "boolean": frozenset({"is", "is_set", "is_not_set"}),
    "tags": frozenset({"has_tag", "has_any_tag", "has_no_tag"}),
    "channel": frozenset({"is", "is_not"}),
}
# custom field type -> how it is stored and compared
STORAGE = {
    "text": "text",
    "email": "text",
    "phone": "text",
    "url": "text",
    "choice": "text",
    "number": "number",
    "date": "date",
    "boolean": "boolean",
}
BUILT_IN: dict[str, tuple[str, Any]] = {
    "name": ("text", contacts.c.name),
    "phone": ("text", contacts.c.phone),
    "email": ("text", contacts.c.email),
    "language": ("text", contacts.c.language),
    "status": ("text", contacts.c.status),
    "assignee": ("number", contacts.c.assignee_id),
    "team": ("number", contacts.c.team_id),
    "created_at": ("date", contacts.c.created_at),
    "last_message_at": ("date", contacts.c.last_message_at),
    # set while the contact is opted out of broadcasts (they sent STOP, or an agent did it)
    "unsubscribed_at": ("date", contacts.c.unsubscribed_at),
}
DURATION = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


FIELD_PATTERN = (
    r"^(name|phone|email|language|status|assignee|team|created_at|last_message_at"
    r"|unsubscribed_at|channel|tags"
    r"|fields\.[a-z][a-z0-9_]{0,63}|answers\.[a-z][a-z0-9_]{0,63}"
    r"|message\.(text|type)|conversation\.(status|handler|channel|assignee|team))$"
)


class Condition(Frozen):
    """One test on one field. Example: `{"field": "fields.plan", "op": "is", "value": "pro"}`."""

    # the pattern is in the JSON schema; the validator says what is wrong in words
    field: str = Field(json_schema_extra={"pattern": FIELD_PATTERN})
    op: Op
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known(cls, field: str) -> str:
        if not re.match(FIELD_PATTERN, field):
            raise ValueError(
                f"unknown field {field!r}; use one of {', '.join(sorted(BUILT_IN))}, channel, "
                "tags, fields.<key> for a custom field, answers.<step> in a flow, "
                "message.text|type or conversation.status|handler|channel|assignee|team "
                "in an automation"
            )
        return field


def _exactly_one(schema: dict[str, Any]) -> None:
    """In the JSON schema, a group is an object with exactly one of `all` and `any`."""
    for key in ("all", "any"):
        prop = schema["properties"][key]
        branches = prop.pop("anyOf", [])
        prop.update(next(b for b in branches if b.get("type") != "null"))
        prop.pop("default", None)
    schema["minProperties"] = schema["maxProperties"] = 1


class Group(Frozen):
    """`all` (every condition holds) or `any` (at least one does); groups nest."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_exactly_one)

    all: tuple[Union[Condition, Group], ...] | None = Field(None, max_length=50)  # noqa: UP007
    any: tuple[Union[Condition, Group], ...] | None = Field(None, max_length=50)  # noqa: UP007

    @model_validator(mode="after")
    def _one_of(self) -> Group:
        if (self.all is None) == (self.any is None):
            raise ValueError("a group has exactly one of 'all' or 'any'")
        return self


class FieldDef(Frozen):
    id: int
    key: str
    type: str


@dataclass(frozen=True)
class _Scope:
    space_id: int
    fields: Mapping[str, FieldDef]
    # per-row probes (EXISTS) suit a first page walked newest-first, which stops after a
    # page of matches; a set of ids (IN) suits a count, which must visit every match
    correlated: bool


def compile_filter(
    group: Group, space_id: int, fields: Mapping[str, FieldDef], *, for_page: bool = True
) -> ColumnElement[bool]:
    """A WHERE clause over one space's `contacts`. Raises `InvalidPayload` saying what is wrong.

    `for_page=False` shapes it for counting instead of for a first page.
    """
    scope = _Scope(space_id, fields, correlated=for_page)
    return sa.and_(
        contacts.c.space_id == space_id,
        contacts.c.merged_into_id.is_(None),  # merged contacts live on in their survivor
        contacts.c.status != "erased",
        _group(group, scope),
    )


def _member_of(ids: sa.Select[Any], scope: _Scope) -> ColumnElement[bool]:
    """`contacts.id` is among `ids` (a select of one contact_id column, already filtered)."""
    if not scope.correlated:
        return contacts.c.id.in_(ids)
    column = ids.selected_columns[0]
    return sa.exists(ids.where(column == contacts.c.id))


def _group(group: Group, scope: _Scope) -> ColumnElement[bool]:
    members = group.all if group.all is not None else group.any or ()
    clauses = [_group(m, scope) if isinstance(m, Group) else _condition(m, scope) for m in members]
    if not clauses:
        return sa.true()
    return sa.and_(*clauses) if group.all is not None else sa.or_(*clauses)


def _condition(c: Condition, scope: _Scope) -> ColumnElement[bool]:
    space_id, fields = scope.space_id, scope.fields
    if c.field == "tags":
        return _tags(c, scope)
    if c.field == "channel":
        _check(c, "channel")
        found = (
            sa.exists()
            .where(identities.c.contact_id == contacts.c.id)
            .where(
                identities.c.channel_id.in_(
                    sa.select(channels.c.id)
                    .where(channels.c.space_id == space_id)
                    .where(sa.or_(channels.c.id == str(c.value), channels.c.kind == str(c.value)))
                )
            )
        )
        return found if c.op == "is" else ~found
    if c.field in BUILT_IN:
        kind, column = BUILT_IN[c.field]
        _check(c, kind)
        return _compare(c, kind, column)
    if c.field.startswith("fields."):
        definition = fields.get(c.field[len("fields.") :])
        if definition is None:
            raise InvalidPayload(
                f"unknown custom field {c.field!r}; defined: "
                + (", ".join(f"fields.{k}" for k in sorted(fields)) or "none")
            )
        kind = STORAGE[definition.type]
        _check(c, kind)
        column = (
            field_values.c.value_number
            if kind in ("number", "boolean")
            else (field_values.c.value_date if kind == "date" else field_values.c.value_text)
        )

        def having(test: ColumnElement[bool]) -> ColumnElement[bool]:
            return _member_of(
                sa.select(field_values.c.contact_id)
                .where(field_values.c.field_id == definition.id)
                .where(test),
                scope,
            )

        if c.op == "is_not_set":
            return ~having(column.is_not(None))
        if c.op == "is_not":
            return ~having(_compare(c.model_copy(update={"op": "is"}), kind, column))
        return having(_compare(c, kind, column))
    if c.field.startswith("answers."):
        raise InvalidPayload(f"{c.field!r}: answers only exist inside a flow's branches")
    if c.field.startswith(("message.", "conversation.")):
        raise InvalidPayload(f"{c.field!r}: only an automation's conditions have a message")
    raise InvalidPayload(
        f"unknown field {c.field!r}; use one of {', '.join(sorted(BUILT_IN))}, channel, tags, "
        "or fields.<key> for a custom field"
    )


def _check(c: Condition, kind: str) -> None:
    if c.op not in OPS[kind]:
        raise InvalidPayload(
            f"{c.field!r} is a {kind} field: use one of {', '.join(sorted(OPS[kind]))} "
            f"(not {c.op!r})"
        )
    if c.op not in ("is_set", "is_not_set") and c.value is None:
        raise InvalidPayload(f"{c.field} {c.op} needs a value")


def _compare(c: Condition, kind: str, column: Any) -> ColumnElement[bool]:
    op, value = c.op, c.value
    if op == "is_set":
        return column.is_not(None)
    if op == "is_not_set":
        return column.is_(None)
    if kind == "text":
        text = str(value)
        if op == "is":
            return column == text
        if op == "is_not":
            return sa.or_(column != text, column.is_(None))
        if op == "starts_with":
            return column.startswith(text, autoescape=True)
        return column.contains(text, autoescape=True)
    if kind in ("number", "boolean"):
        if kind == "boolean":
            value = 1.0 if value in (True, "true", 1) else 0.0
        if op == "between":
            low, high = _pair(c, float)
            return column.between(low, high)
        number = _number(c, value)
        if op == "is_not":  # an unassigned contact is not user 4's either
            return sa.or_(column != number, column.is_(None))
        return {"is": column == number, "gt": column > number, "lt": column < number}[op]
    # dates
    if op == "within_last":
        return column >= now() - duration(c)
    if op == "between":
        low, high = _pair(c, as_datetime)
        return column.between(low, high)
    moment = as_datetime(value)
    return column < moment if op == "before" else column > moment


def _tags(c: Condition, scope: _Scope) -> ColumnElement[bool]:
    _check(c, "tags")
    names = [str(v) for v in (c.value if isinstance(c.value, list) else [c.value])]
    tag_ids = (
        sa.select(tags.c.id).where(tags.c.space_id == scope.space_id).where(tags.c.name.in_(names))
    )
    tagged = _member_of(
        sa.select(contact_tags.c.contact_id).where(contact_tags.c.tag_id.in_(tag_ids)), scope
    )
    if c.op == "has_no_tag":
        return ~tagged
    if c.op == "has_tag" and len(names) > 1:
        return sa.and_(
            *(_tags(Condition(field="tags", op="has_tag", value=n), scope) for n in names)
        )
    return tagged


def _number(c: Condition, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidPayload(f"{c.field} {c.op}: {value!r} is not a number") from None


def as_datetime(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidPayload(f"{value!r} is not a date (use 2026-01-31 or an ISO time)") from None
    return (
        moment.replace(tzinfo=None)
        if moment.tzinfo is None
        else (moment - moment.utcoffset()).replace(tzinfo=None)
    )  # type: ignore[operator]


def duration(c: Condition) -> timedelta:
    match = DURATION.match(str(c.value))
    if not match:
        raise InvalidPayload(f"{c.field} within_last: use a duration like 30m, 24h, 7d or 2w")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def _pair(c: Condition, convert: Any) -> tuple[Any, Any]:
    if not isinstance(c.value, list) or len(c.value) != 2:
        raise InvalidPayload(f"{c.field} between: the value is a list of two: [low, high]")
    try:
        return convert(c.value[0]), convert(c.value[1])
    except (TypeError, ValueError):
        raise InvalidPayload(f"{c.field} between: {c.value!r} are not two values") from None
