"""A conversation's work in hand: what the one task running it does next, in order.

The work queue drains a conversation's items and the sender sends its outbox rows, each
in id order, one task per conversation. Work committed while that task runs joins the
end of its line when the line holds everything of the conversation committed before it
(the committer says what that was), so nobody reads it back from the database;
otherwise the task's owner looks for it once the line is done.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
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
