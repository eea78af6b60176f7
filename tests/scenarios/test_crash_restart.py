"""kill -9 after the acks but before processing completes; restart; nothing lost or doubled."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp

from tests.scenarios.hub import HubProcess

VISITORS = 30
MESSAGES = 8  # per visitor: "hi", then questions


def question(n: int) -> str:
    return "hi" if n == 0 else ("pricing" if n % 2 else "opening hours")


async def visit(
    session: aiohttp.ClientSession, url: str, token: str | None, sends: int
) -> dict[str, Any]:
    """Connect, send `sends` messages (each awaiting its ack), return what came back."""
    seen: dict[int, dict[str, Any]] = {}
    async with session.ws_connect(url) as ws:
        await ws.send_json({"type": "hello", "token": token})
        session_frame = await ws.receive_json(timeout=10)
        history = await ws.receive_json(timeout=10)
        for m in history["messages"]:
            seen[m["id"]] = m
        for n in range(sends):
            await ws.send_json({"type": "message", "id": f"m{n}", "text": question(n)})
            while (frame := await ws.receive_json(timeout=10))["type"] != "ack":
                if frame["type"] == "message":
                    seen[frame["message"]["id"]] = frame["message"]
            assert frame["message_id"] is not None
    return {"token": session_frame["token"], "seen": seen}


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


async def test_every_acknowledged_message_gets_exactly_one_reply_across_a_crash(
    hub: HubProcess,
) -> None:
    ws_url = f"{hub.url}/webchat/ws?channel={await hub.webchat_channel()}"
    async with aiohttp.ClientSession() as session:
        first = await asyncio.gather(
            *(visit(session, ws_url, None, MESSAGES) for _ in range(VISITORS))
        )
    hub.kill()  # every message above was acknowledged, so it must survive this

    inbound = rows(hub.db_path, "SELECT count(*) FROM messages WHERE direction = 'in'")[0][0]
    pending = rows(hub.db_path, "SELECT count(*) FROM work_items")[0][0]
    unsent = rows(hub.db_path, "SELECT count(*) FROM outbox")[0][0]
    assert inbound == VISITORS * MESSAGES
    print(f"at the crash: {pending} work items and {unsent} outbox rows pending")
    assert pending + unsent > 0, "the crash came too late to test anything: processing was done"

    await hub.start()
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            left = rows(
                hub.db_path,
                "SELECT (SELECT count(*) FROM work_items) + (SELECT count(*) FROM outbox)",
            )[0][0]
            if left == 0:
                break
            await asyncio.sleep(0.1)
        assert left == 0, "work left after restart"
        # each visitor comes back with their token and reads the history
        after = await asyncio.gather(*(visit(session, ws_url, v["token"], 0) for v in first))

    # the database: exactly one reply per inbound message, all sent
    replies = rows(
        hub.db_path,
        "SELECT i.id, i.parts, count(o.id), min(o.status), max(o.parts) FROM messages i "
        "LEFT JOIN messages o ON o.reply_to_id = i.id WHERE i.direction = 'in' GROUP BY i.id",
    )
    assert len(replies) == VISITORS * MESSAGES
    for _, asked, n, status, answer in replies:
        assert n == 1, f"{n} replies to {asked}"
        assert status == "sent"
        expected = {"hi": "Hi! I'm", "pricing": "Starter is", "opening hours": "We're open"}
        text = next(v for k, v in expected.items() if f'"{k}"' in asked)
        assert text in answer

    # what each visitor saw (live before the crash, then history): one reply per message
    for before, later in zip(first, after, strict=True):
        seen = {**before["seen"], **later["seen"]}
        directions = [seen[k]["direction"] for k in sorted(seen)]
        assert directions.count("in") == MESSAGES and directions.count("out") == MESSAGES
