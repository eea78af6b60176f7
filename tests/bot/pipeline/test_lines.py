"""A conversation's line: items in id order, each taken once, and what may join it."""

from __future__ import annotations

from dataclasses import dataclass

from bot.pipeline.lines import Line, Lines


@dataclass(frozen=True)
class Item:
    id: int


def drained(line: Line[Item]) -> list[int]:
    taken = []
    while (item := line.next()) is not None:
        taken.append(item.id)
    return taken


def test_an_item_read_back_after_it_was_handed_over_is_taken_once() -> None:
    line: Line[Item] = Line()
    line.take([Item(3), Item(4)])
    line.take([Item(4), Item(5)])  # a read that saw 4 committed, then its hand-over
    assert drained(line) == [3, 4, 5]
    line.take([Item(2)])  # older than what it took: already done
    assert drained(line) == []
    assert line.last == 5


def test_new_items_join_only_a_line_that_holds_what_came_before_them() -> None:
    line: Line[Item] = Line()
    assert line.holds_all_before(None)
    assert not line.holds_all_before(7)  # 7 is owed and this line never took it
    line.take([Item(7)])
    assert line.holds_all_before(7)
    assert line.holds_all_before(6)
    assert not line.holds_all_before(8)


def test_a_line_that_ended_done_clears_what_it_took_one_that_failed_does_not() -> None:
    lines: Lines[Item] = Lines()
    lines.start(1).take([Item(10)])
    lines.start(2).take([Item(20)])
    assert 1 in lines and len(lines) == 2
    lines.end(1, done=True)
    lines.end(2, done=False)  # a retry or an error: its item is still owed
    assert lines.clear_after(1, 10) and lines.clear_after(1, None)
    assert not lines.clear_after(1, 11)
    assert not lines.clear_after(2, 20)
    assert list(lines) == []


def test_lines_remember_a_bounded_number_of_ends() -> None:
    lines: Lines[Item] = Lines(remember=2)
    for conversation in (1, 2, 3):
        lines.start(conversation).take([Item(conversation)])
        lines.end(conversation, done=True)
    assert not lines.clear_after(1, 1)  # forgotten: the owner looks instead
    assert lines.clear_after(2, 2) and lines.clear_after(3, 3)
