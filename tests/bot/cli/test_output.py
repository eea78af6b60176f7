"""What people read: aligned tables on a terminal, tab-separated rows in a pipe, records."""

from __future__ import annotations

import io

import pytest

from bot.cli.output import emit


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ITEMS = {"items": [{"id": 1, "name": "Ana\tB", "tags": ["vip"]}, {"id": 22, "name": None}]}


def test_a_table_is_aligned_on_a_terminal_and_tab_separated_in_a_pipe() -> None:
    screen, pipe = Terminal(), io.StringIO()
    emit(ITEMS, out=screen)
    emit(ITEMS, out=pipe)
    assert screen.getvalue().splitlines() == [
        "id  name    tags",
        '1   Ana\\tB  ["vip"]',
        "22  -       -",
    ]
    # a tab inside a value must not add a column
    assert pipe.getvalue().splitlines()[1].split("\t") == ["1", "Ana\\tB", '["vip"]']


def test_a_record_lists_its_fields_then_its_tables_and_nested_parts() -> None:
    out = io.StringIO()
    body = {
        "id": 1,
        "name": "nps",
        "members": [{"user_id": 1, "role": "admin"}],
        "definition": {"steps": [{"id": "score", "text": "From 0 to 10?"}]},
    }
    emit(body, out=out)
    assert out.getvalue().splitlines() == [
        "id:   1",
        "name: nps",
        "",
        "members:",
        "user_id\trole",
        "1\tadmin",
        "",
        "definition:",
        "  steps:",
        "  - id: score",
        "    text: From 0 to 10?",
    ]


def test_json_is_the_answer_as_is_and_nothing_after_a_204(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit(None, as_json=True)
    emit(None)
    emit({"items": [], "count": 0})
    out, err = capsys.readouterr()
    assert out == "done\n0 in all\n" and err == "(none)\n"
