"""A conversation's work in hand: what the one task running it does next, in order.

The work queue drains a conversation's items and the sender sends its outbox rows, each
in id order, one task per conversation. Work committed while that task runs joins the
end of its line when the line holds everything of the conversation committed before it
(the committer says what that was), so nobody reads it back from the database;
otherwise the task's owner looks for it once the line is done.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar


class Identified(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=Identified)


class Line(Generic[T]):
    def __init__(self) -> None:
        self._waiting: deque[T] = deque()
        self.last: int | None = None  # the id of the last item taken

    def holds_all_before(self, after: int | None) -> bool:
        """True when `after` (the conversation's last item before some new ones, None for
        none) was taken by this line: the new ones may join it."""
        return after is None or (self.last is not None and after <= self.last)

    def take(self, items: Iterable[T]) -> None:
        """Queue `items` (in id order); one already taken (read back from the database as
        well as handed over) is taken once."""
        for item in items:
            if self.last is None or item.id > self.last:
                self._waiting.append(item)
                self.last = item.id

    def next(self) -> T | None:
        return self._waiting.popleft() if self._waiting else None

    def __len__(self) -> int:
        return len(self._waiting)


class Lines(Generic[T]):
    """The lines of the conversations being worked on, and where recent ones ended.

    A commit that raced the end of a line (it saw the line's last item still owed) may
    still start a new line of its own: everything it saw was done when that line ended.
    """

    def __init__(self, remember: int = 10_000) -> None:
        self._running: dict[int, Line[T]] = {}
        self._ended: OrderedDict[int, int] = OrderedDict()  # conversation -> last item done
        self._remember = remember

    def get(self, conversation_id: int) -> Line[T] | None:
        return self._running.get(conversation_id)

    def start(self, conversation_id: int) -> Line[T]:
        line = self._running[conversation_id] = Line()
        return line

    def end(self, conversation_id: int, done: bool) -> None:
        """The line's task ends; `done`: every item it took was handled."""
        line = self._running.pop(conversation_id)
        if done and line.last is not None:
            self._ended[conversation_id] = line.last
            self._ended.move_to_end(conversation_id)
            if len(self._ended) > self._remember:
                self._ended.popitem(last=False)

    def clear_after(self, conversation_id: int, after: int | None) -> bool:
        """Nothing of the conversation up to `after` is owed: a line ended past it."""
        return after is None or self._ended.get(conversation_id, -1) >= after

    def __contains__(self, conversation_id: int) -> bool:
        return conversation_id in self._running

    def __iter__(self) -> Iterator[int]:
        return iter(self._running)

    def __len__(self) -> int:
        return len(self._running)
