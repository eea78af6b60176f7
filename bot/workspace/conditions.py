"""The filter language of views, evaluated for one contact.

Views compile to SQL over many contacts; a flow's branch asks about one contact and
the answers it just gave (`answers.<step>`), an automation about one contact and the
message or conversation at hand (`message.text`, `conversation.handler`), none of them
saved anywhere, so the same conditions are evaluated here against a dict of values.
`compile_group` turns a group into a predicate once, and says which values it reads,
so an automation whose conditions only read the message costs no query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.clock import now
from bot.workspace.filters import Condition, Group, as_datetime, duration

Predicate = Callable[[dict[str, Any], set[str]], bool]


def compile_group(group: Group) -> Predicate:
    """`holds(group, ...)` as one closure; plain text tests are prepared once."""
    members = [
        compile_group(i) if isinstance(i, Group) else _compile(i)
        for i in (group.all if group.all is not None else group.any) or ()
    ]
    if group.all is not None:
        return lambda values, tags: all(m(values, tags) for m in members)
    return lambda values, tags: any(m(values, tags) for m in members)


def reads(group: Group) -> set[str]:
    """What the group reads: `tags`, and the first word of each field (`message`,
    `conversation`, `fields`, or `contact` for the built-ins)."""
    found: set[str] = set()
    for item in (group.all if group.all is not None else group.any) or ():
        if isinstance(item, Group):
            found |= reads(item)
        else:
            head = item.field.split(".")[0]
            found.add(head if head in ("tags", "message", "conversation", "fields") else "contact")
    return found


def _compile(c: Condition) -> Predicate:
    wanted = c.value
    if c.op in ("contains", "starts_with", "is") and isinstance(wanted, str) and c.field != "tags":
        needle, field, op = wanted.casefold(), c.field, c.op

        def text(values: dict[str, Any], tags: set[str]) -> bool:
            value = values.get(field)
            if not isinstance(value, str):
                return _holds(c, values, tags)
            folded = value.casefold()
            if op == "contains":
                return needle in folded
            return folded.startswith(needle) if op == "starts_with" else folded == needle

        return text
    return lambda values, tags: _holds(c, values, tags)


def holds(group: Group, values: dict[str, Any], tags: set[str]) -> bool:
    items = group.all if group.all is not None else group.any
    results = (
        holds(i, values, tags) if isinstance(i, Group) else _holds(i, values, tags)
        for i in items or ()
    )
    return all(results) if group.all is not None else any(results)


def _holds(c: Condition, values: dict[str, Any], tags: set[str]) -> bool:
    if c.field == "tags":
        wanted = {c.value} if isinstance(c.value, str) else set(c.value or ())
        if c.op == "has_tag":
            return wanted <= tags
        if c.op == "has_any_tag":
            return bool(wanted & tags)
        return not wanted & tags
    value = values.get(c.field)
    if c.op == "is_set":
        return value not in (None, "", [])
    if c.op == "is_not_set":
        return value in (None, "", [])
    if value is None:
        return c.op == "is_not"
    if isinstance(value, list):  # a multiple choice: any chosen option
        return any(_compare(c, v) for v in value) if c.op != "is_not" else c.value not in value
    return _compare(c, value)


def _compare(c: Condition, value: Any) -> bool:
    op, wanted = c.op, c.value
    if op in ("before", "after", "within_last") or (
        op == "between" and isinstance(value, str) and not _number_like(value)
    ):
        at = as_datetime(value)
        if op == "within_last":
            return at >= now() - duration(c)
        if op == "between":
            low, high = (as_datetime(v) for v in wanted)
            return low <= at <= high
        return at < as_datetime(wanted) if op == "before" else at > as_datetime(wanted)
    if op in ("gt", "lt", "between"):
        number = float(value)
        if op == "between":
            return float(wanted[0]) <= number <= float(wanted[1])
        return number > float(wanted) if op == "gt" else number < float(wanted)
    if isinstance(value, bool) or isinstance(wanted, bool):
        same = bool(value) == (wanted in (True, "true", "yes", 1))
    elif isinstance(value, int | float) and not isinstance(wanted, list):
        try:
            same = float(value) == float(wanted)
        except (TypeError, ValueError):
            same = False
    else:
        text, other = str(value).casefold(), str(wanted).casefold()
        if op == "contains":
            return other in text
        if op == "starts_with":
            return text.startswith(other)
        same = text == other
    return same if op == "is" else not same


def _number_like(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
