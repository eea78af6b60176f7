"""Every key ChanCenter keeps in Redis, on one screen (as arq keeps its own).

Scale-out processes meet through these names: a worker leases a partition's stream,
the web processes append to it, and all of them share the rate buckets and the web-chat
fan-out channel.
"""

from __future__ import annotations

PREFIX = "cc:"
DEAD_LETTERS = f"{PREFIX}work:dead"  # work items set aside after repeated failures
WEBCHAT = f"{PREFIX}webchat"  # pub/sub: frames for visitors connected to another process


def work_stream(partition: int) -> str:
    """The stream of one partition of the work queue (conversations hash to partitions)."""
    return f"{PREFIX}work:{partition}"


def lease(partition: int) -> str:
    """Who reads a partition: a worker holds this key while it is alive."""
    return f"{PREFIX}lease:{partition}"


def rate_bucket(name: str, key: str) -> str:
    """A token bucket shared by every process (a channel's sends, a chat's)."""
    return f"{PREFIX}rate:{name}:{key}"
