"""Payloads broken in every place: each value, at any depth, replaced by a wrong one.

Parsers must be total: a platform (or whoever holds its secret) may send any JSON,
and an exception would answer 500, which platforms redeliver forever.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from aiohttp.test_utils import TestClient

Path = tuple[str | int, ...]

WRONG: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    10**30,
    1e308,
    float("inf"),
    float("nan"),
    "",
    "x",
    [],
    [1, "x", None],
    {},
    {"x": 1},
)


def paths(value: Any, at: Path = ()) -> Iterator[Path]:
    """Every place in a JSON value, the root included, parents before children."""
    yield at
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*at, index))


def replaced(value: Any, at: Path, new: Any) -> Any:
    """A copy of `value`, sharing nothing, with the place `at` holding `new`."""
    if not at:
        return new
    copied = json.loads(json.dumps(value))  # deepcopy would keep shared dicts shared
    parent = copied
    for step in at[:-1]:
        parent = parent[step]
    parent[at[-1]] = new
    return copied


def mutations(payload: Any, under: Path = ()) -> Iterator[tuple[Path, Any]]:
    """`payload` with one place under `under` (a path) replaced by each wrong value."""
    for at in paths(payload):
        if at[: len(under)] == under:
            for wrong in WRONG:
                yield at, replaced(payload, at, wrong)


async def raw_post(client: TestClient, path: str, header: bytes, body: bytes) -> int:
    """POST with one header line sent as these exact bytes (clients refuse non-UTF-8);
    answers the status code."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n" + header + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()
