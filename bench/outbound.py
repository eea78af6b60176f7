"""Outbound benchmark: the sender's sends per second to a no-op platform, and its budget.

A no-op Telegram Bot API (its own process) answers every `sendMessage` at once and
notes when each arrived. Two figures:

1. throughput: the hub (`chancenter serve`, SQLite) delivers a backlog of outbox rows
   (one per chat, so no per-chat limit applies; the channel's budget set far above
   reach) against a bare aiohttp client loop posting the same form to the same
   platform with as many requests in flight. Rate = sends between the first and the
   last arrival. Interleaved rounds, median [min-max].
2. budget: the channel's `per_second` set to a budget the hub can reach; the share of
   it achieved, and the most sends seen in any one-second window (none may exceed the
   budget: the platform would answer 429).

With `--before DIR` (a checkout of earlier code), the hub also runs as that code, in the
same interleaved rounds.

    .venv/bin/python bench/outbound.py [--messages 3000] [--budget 200] [--rounds 3]
                                       [--before DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.ingest import Process, before_option, chancenter, free_port, spread  # noqa: E402

TOKEN = "123456:BENCH"
CONCURRENCY = 100  # the bare loop's requests in flight (aiohttp's default pool size)


# --- the no-op platform --------------------------------------------------------------


def platform_app() -> web.Application:
    arrivals: list[float] = []

    async def method(request: web.Request) -> web.Response:
        form = await request.post()
        arrivals.append(time.monotonic())
        result = {
            "message_id": len(arrivals),
            "date": int(time.time()),
            "chat": {"id": int(str(form.get("chat_id", "1"))), "type": "private"},
            "text": str(form.get("text", "")),
        }
        return web.json_response({"ok": True, "result": result})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def reset(_: web.Request) -> web.Response:
        arrivals.clear()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", method)
    app.router.add_get("/arrivals", stats)
    app.router.add_post("/reset", reset)
    app.router.add_get("/readyz", lambda _: web.json_response({"status": "ok"}))
    return app


async def arrivals(platform: str, expected: int, timeout: float = 120) -> list[float]:
    """The arrival times, once `expected` sends have arrived."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(platform + "/arrivals") as r:
                seen: list[float] = await r.json()
            if len(seen) >= expected or time.monotonic() > deadline:
                return seen
            await asyncio.sleep(0.2)


def rate_of(seen: list[float]) -> float:
    return (len(seen) - 1) / (seen[-1] - seen[0]) if len(seen) > 1 else 0.0


def busiest_second(seen: list[float]) -> int:
    """The most arrivals in any window of one second."""
    return max(bisect.bisect_left(seen, t + 1.0) - n for n, t in enumerate(seen))


# --- the baseline: a bare client loop -------------------------------------------------


async def bare_loop(platform: str, messages: int) -> list[float]:
    url = f"{platform}/bot{TOKEN}/sendMessage"
    todo = iter(range(messages))

    async def sender(session: aiohttp.ClientSession) -> None:
        for n in todo:
            form = aiohttp.FormData({"chat_id": str(1000 + n), "text": f"reply {n}"})
            async with session.post(url, data=form) as resp:
                body = await resp.json()
                assert body["ok"], body

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session) for _ in range(CONCURRENCY)))
    return await arrivals(platform, messages)


# --- the hub: a backlog in the outbox, delivered by `serve` ----------------------------


def backlog(db: Path, messages: int, per_second: float) -> None:
    """A Telegram channel and `messages` pending replies, one per chat."""
    from bot.workspace.crypto import Vault

    sealed = Vault(b"bench-key").seal({"token": TOKEN, "secret_token": "s"})
    at = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    parts = json.dumps([{"type": "text", "text": "Thanks, we'll be in touch."}])
    with sqlite3.connect(db) as conn:
        named = any(c[1] == "conversation_id" for c in conn.execute("PRAGMA table_info(outbox)"))
        conn.execute(
            "INSERT INTO channels (id, space_id, kind, name, credentials, settings) "
            "VALUES ('telegram', 1, 'telegram', 'telegram', ?, ?)",
            (sealed, json.dumps({"per_second": per_second})),
        )
        for n in range(messages):
            contact = conn.execute(
                "INSERT INTO contacts (space_id, created_at) VALUES (1, ?)", (at,)
            ).lastrowid
            identity = conn.execute(
                "INSERT INTO identities (contact_id, channel_id, external_id) "
                "VALUES (?, 'telegram', ?)",
                (contact, str(1000 + n)),
            ).lastrowid
            conversation = conn.execute(
                "INSERT INTO conversations (space_id, contact_id, channel_id, identity_id, "
                "created_at) VALUES (1, ?, 'telegram', ?, ?)",
                (contact, identity, at),
            ).lastrowid
            message = conn.execute(
                "INSERT INTO messages (space_id, conversation_id, channel_id, direction, parts, "
                "status, created_at) VALUES (1, ?, 'telegram', 'out', ?, 'pending', ?)",
                (conversation, parts, at),
            ).lastrowid
            # (an earlier checkout's outbox may not name the conversation)
            columns = "message_id, channel_id, next_attempt_at"
            values: tuple[object, ...] = (message, "telegram", at)
            if named:
                columns, values = columns + ", conversation_id", (*values, conversation)
            marks = ", ".join("?" * len(values))
            conn.execute(f"INSERT INTO outbox ({columns}) VALUES ({marks})", values)


async def hub(platform: str, messages: int, per_second: float, root: Path = ROOT) -> list[float]:
    """The hub (run by the checkout at `root`) delivering a backlog of `messages`."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CHANCENTER_PORT": str(port),
            "CHANCENTER_LOG_LEVEL": "WARNING",
            "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "CHANCENTER_DATA_DIR": f"{tmp}/data",
            "CHANCENTER_SECRET_KEY": "bench-key",
            "CHANCENTER_TELEGRAM_API_BASE": platform,
        }
        # the platform runs in its own process: blocking is fine
        chancenter(env, "db", "upgrade", root=root)
        chancenter(env, "init", root=root)
        backlog(Path(tmp) / "bench.db", messages, per_second)
        proc = Process([sys.executable, "-m", "bot", "serve"], env, port, root)
        try:
            return await arrivals(platform, messages)
        finally:
            proc.stop()


async def reset(platform: str) -> None:
    async with aiohttp.ClientSession() as s, s.post(platform + "/reset"):
        pass


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    platform = Process([sys.executable, __file__, "--platform", str(port)], dict(os.environ), port)
    try:
        await platform.ready()
        rates: dict[str, list[float]] = {"bare": [], "hub": []}
        if args.before:
            rates["before"] = []
        for n in range(args.rounds):
            for kind in rates:  # interleaved: drift on the machine hits all alike
                await reset(platform.url)
                if kind == "bare":
                    seen = await bare_loop(platform.url, args.messages)
                else:
                    root = args.before if kind == "before" else ROOT
                    seen = await hub(platform.url, args.messages, 1_000_000, root)
                assert len(seen) == args.messages, f"{kind}: {len(seen)} of {args.messages} sent"
                rates[kind].append(rate_of(seen))
                print(f"round {n + 1} {kind}: {rates[kind][-1]:.0f} sends/s", file=sys.stderr)
        await reset(platform.url)
        budgeted = int(args.budget * 10)  # ten seconds' worth at the budget
        seen = await hub(platform.url, budgeted, per_second=args.budget)
    finally:
        platform.stop()

    bare = statistics.median(rates["bare"])
    print(
        f"\noutbound to a no-op Telegram API, {args.messages} messages (one per chat), "
        f"{args.rounds} interleaved rounds (median [min-max])"
    )
    print(f"{'sender':<22} {'sends/s':>18} {'ratio':>6}")
    labels = {
        "bare": "bare client loop",
        "hub": "hub (outbox -> sender)",
        "before": "hub, before",
    }
    for kind in rates:
        label = labels[kind]
        ratio = statistics.median(rates[kind]) / bare
        print(f"{label:<22} {spread(rates[kind]):>18} {ratio:>6.2f}")
    print(
        f"\nbudget {args.budget:g}/s (the channel's per_second), {budgeted} messages: "
        f"{rate_of(seen):.1f} sends/s = {rate_of(seen) / args.budget:.0%} of it; "
        f"busiest one-second window {busiest_second(seen)} sends "
        f"({'none over the budget' if busiest_second(seen) <= args.budget else 'OVER'})"
    )
    if args.json:
        figures = {
            "ratio": round(statistics.median(rates["hub"]) / bare, 3),
            "bare_sends_per_s": round(bare, 1),
            "hub_sends_per_s": round(statistics.median(rates["hub"]), 1),
            "budget_share": round(rate_of(seen) / args.budget, 3),
            "busiest_second": busiest_second(seen),
        }
        if args.before:
            figures["before_ratio"] = round(statistics.median(rates["before"]) / bare, 3)
        print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="sends per round")
    parser.add_argument("--budget", type=float, default=200, help="the platform budget, per s")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    before_option(parser)
    parser.add_argument("--platform", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.platform:
        web.run_app(platform_app(), host="127.0.0.1", port=args.platform, print=None)
    else:
        asyncio.run(main(args))
