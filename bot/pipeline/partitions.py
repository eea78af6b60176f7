"""Conversations are split into partitions; in scale-out each belongs to one worker at a time,
which alone handles, sends and relays for its conversations (so nothing is done twice)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

PARTITIONS = 32

# which partitions this process serves; None: all of them (one process does everything)
Owned = Callable[[], set[int] | None]


def everything() -> set[int] | None:
    return None


def partition_of(conversation_id: int) -> int:
    return conversation_id % PARTITIONS


def only_owned(column: Any, owned: Owned) -> Any:
    """A WHERE clause keeping the rows of this process's conversations."""
    partitions = owned()
    if partitions is None:
        return sa.true()
    return (column % PARTITIONS).in_(sorted(partitions))
