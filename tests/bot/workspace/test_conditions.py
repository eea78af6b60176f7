"""Branch conditions: the views' filter language, for one contact and their answers."""

from __future__ import annotations

import pytest

from bot.workspace.conditions import compile_group, holds, reads
from bot.workspace.filters import Group

VALUES = {
    "answers.plan": "Pro",
    "answers.seats": 12.0,
    "fields.renewal": "2026-06-01",
    "answers.colours": ["Red", "Blue"],
    "answers.ok": True,
    "email": None,
}


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ({"all": [{"field": "answers.plan", "op": "is", "value": "pro"}]}, True),
        ({"all": [{"field": "answers.seats", "op": "gt", "value": 10}]}, True),
        ({"all": [{"field": "answers.seats", "op": "between", "value": [1, 5]}]}, False),
        ({"all": [{"field": "fields.renewal", "op": "before", "value": "2026-07-01"}]}, True),
        ({"all": [{"field": "answers.colours", "op": "is", "value": "Blue"}]}, True),
        ({"all": [{"field": "answers.ok", "op": "is", "value": True}]}, True),
        ({"all": [{"field": "email", "op": "is_not_set"}]}, True),
        ({"all": [{"field": "tags", "op": "has_tag", "value": "vip"}]}, True),
        ({"all": [{"field": "tags", "op": "has_no_tag", "value": "vip"}]}, False),
        (
            {
                "any": [
                    {"field": "answers.plan", "op": "is", "value": "free"},
                    {"all": [{"field": "answers.seats", "op": "lt", "value": 20}]},
                ]
            },
            True,
        ),
    ],
)
def test_conditions(group: dict, expected: bool) -> None:
    parsed = Group.model_validate(group)
    assert holds(parsed, VALUES, {"vip"}) is expected
    # compiled once (an automation's conditions), the same answer
    assert compile_group(parsed)(VALUES, {"vip"}) is expected


def test_what_a_group_reads() -> None:
    group = Group.model_validate(
        {
            "all": [
                {"field": "message.text", "op": "contains", "value": "price"},
                {"any": [{"field": "tags", "op": "has_tag", "value": "vip"}]},
            ]
        }
    )
    assert reads(group) == {"message", "tags"}  # no contact or field query needed
    predicate = compile_group(group)
    assert predicate({"message.text": "The PRICE?"}, {"vip"}) is True
    assert predicate({"message.text": "hello"}, {"vip"}) is False
    assert predicate({"message.text": None}, {"vip"}) is False
