"""Automations: what enabled automations cost a message, and a burst of timers firing.

1. messages: the hub (`chancenter serve`, SQLite, its own process) with 0, 10 and 100
   enabled `message_received` automations whose conditions never match (the engine
   compiles them once per change, so they should cost next to nothing). Web-chat
   visitors send through the real socket; what is measured is a message in -> the
   worker (automations first, then the built-in bot) -> its reply on the socket, as in
   `bench/e2e.py`: the closed-loop peak (each visitor waits for its reply before it
   sends again) and its p99, then p50/p99 at a fixed rate (half the peak with none) that
   is the same for every configuration. Interleaved rounds, median [min-max]; the
   ratio is against 0 automations.
2. timers: one `no_reply` automation (action: a tag) and 10,000 conversations whose
   deadlines fall due in the same second, written straight into `automation_timers`
   while the hub runs; its clock fires them (500 a round) and the worker runs them.
   Seconds from the due time to the first and the last run recorded, and whether any
   (automation, conversation) ran more than once.

    .venv/bin/python bench/automations.py [--visitors 20] [--messages 50] [--seconds 4]
        [--rounds 2] [--automations 0 10 100] [--timers 10000] [--quick] [--json]

With `--json` the last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from automations.clock import BATCH  # noqa: E402
from automations.definition import parse_automation  # noqa: E402
from automations.references import check  # noqa: E402
from automations.store import save_new  # noqa: E402
from bench.ingest import Process, server, spread, webchat_channel  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from bot.storage.migrate import upgrade  # noqa: E402
from bot.storage.tables import channels  # noqa: E402
from bot.workspace.bootstrap import ensure_default_space  # noqa: E402
from bot.workspace.triggers import no_reply_key  # noqa: E402

NEVER_MATCHES = """
name: never-matches-{n}
trigger: {{on: message_received}}
conditions: {{all: [{{field: message.text, op: contains, value: "zz-no-match-{n}"}}]}}
actions:
  - tag: lead
"""
FOLLOW_UP = """
name: follow-up
trigger: {on: no_reply, from: contact, after: 1h}
actions:
  - tag: followed-up
"""
TEXTS = ("pricing", "opening hours")  # answered by the built-in bot, one reply each


# --- the hub's database, prepared before (or beside) `serve` ----------------------------


async def prepare(workdir: Path, *definitions: str) -> tuple[int, list[int]]:
    """Schema, the default space (with its web chat) and the automations, saved as the
    API saves them (validated, stored, armed, the space's version bumped)."""
    url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        space_id = await ensure_default_space(db, webchat=True)
        ids = [await add_automation(db, space_id, text) for text in definitions]
    finally:
        await db.close()
    return space_id, ids


async def add_automation(db: Database, space_id: int, text: str) -> int:
    """As `tests/automations/helpers.py::add` (and `POST /api/v1/automations`) do."""
    automation = parse_automation(text)
    async with db.write() as conn:
        await check(conn, space_id, automation)
        return await save_new(conn, space_id, automation)


# --- part 1: messages through the web chat ----------------------------------------------


@dataclass
class Figures:
    peak: float  # replies/s, closed loop
    peak_p99: float  # ms, closed loop
    first: float  # ms, the slowest of the visitors' first replies (sent all at once)
    p50: float  # ms, at the fixed rate
    p99: float


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000 if ordered else math.nan


class Visitor:
    """One web-chat visitor: a socket, and the time each unanswered message was sent."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.n = 0

    async def send(self) -> None:
        self.n += 1
        text = TEXTS[self.n % 2]
        await self.ws.send_json({"type": "message", "id": f"m{self.n}", "text": text})

    async def reply(self) -> None:
        """Until the bot's next reply (acks and the like are skipped)."""
        while True:
            frame = await self.ws.receive_json(timeout=60)
            if frame["type"] == "error":
                raise RuntimeError(f"the hub refused a frame: {frame}")
            if frame["type"] == "message" and frame["message"]["direction"] == "out":
                return


async def visitors(
    session: aiohttp.ClientSession, url: str, count: int
) -> tuple[list[Visitor], float]:
    """Connected, greeted and past their first message (which opens the conversation and
    makes the contact; the first also has the space's automations compiled): the
    visitors, and the slowest first reply (all first messages sent at once), in ms."""

    async def connect() -> Visitor:
        ws = await session.ws_connect(url)
        await ws.send_json({"type": "hello", "token": None})
        await ws.receive_json()  # session
        await ws.receive_json()  # history
        return Visitor(ws)

    async def first(visitor: Visitor) -> float:
        sent = time.perf_counter()
        await visitor.ws.send_json({"type": "message", "id": "hello", "text": "hello"})
        await visitor.reply()
        return time.perf_counter() - sent

    people = list(await asyncio.gather(*(connect() for _ in range(count))))
    slowest = max(await asyncio.gather(*(first(v) for v in people)))
    return people, slowest * 1000


async def closed_loop(people: list[Visitor], messages: int) -> tuple[float, list[float]]:
    """Each visitor sends its next message when the reply to the last one arrived."""
    latencies: list[float] = []

    async def run(visitor: Visitor) -> None:
        for _ in range(messages):
            sent = time.perf_counter()
            await visitor.send()
            await visitor.reply()
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(run(v) for v in people))
    return len(latencies) / (time.perf_counter() - started), latencies


async def paced(people: list[Visitor], rate: float, seconds: float) -> list[float]:
    """Every visitor sends on a fixed schedule (rate/visitors per second), whatever the
    replies do; the time from each message to its reply."""
    latencies: list[float] = []
    interval = len(people) / rate

    async def run(visitor: Visitor, offset: float) -> None:
        await asyncio.sleep(offset)
        waiting: list[float] = []
        answered = asyncio.Event()
        done = False

        async def reader() -> None:
            while not (done and not waiting):
                await visitor.reply()
                latencies.append(time.perf_counter() - waiting.pop(0))
            answered.set()

        task = asyncio.create_task(reader())
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            waiting.append(time.perf_counter())
            await visitor.send()
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))
        done = True
        if not waiting:
            task.cancel()
            return
        await asyncio.wait_for(answered.wait(), 60)
        await task

    await asyncio.gather(*(run(v, i * interval / len(people)) for i, v in enumerate(people)))
    return latencies


async def message_round(
    automations_count: int, args: argparse.Namespace, rate: float | None
) -> Figures:
    """One fresh hub with `automations_count` automations; the fixed rate is `rate`, or
    half the peak when None."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        await prepare(workdir, *(NEVER_MATCHES.format(n=n) for n in range(automations_count)))
        hub = server("hub", workdir)
        try:
            await hub.ready()
            channel = await webchat_channel(hub.url)
            url = f"{hub.url.replace('http', 'ws')}/webchat/ws?channel={channel}"
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                people, slowest = await visitors(session, url, args.visitors)
                peak, closed = await closed_loop(people, args.messages)
                latencies = await paced(people, rate or peak / 2, args.seconds)
                for visitor in people:
                    await visitor.ws.close()
        finally:
            hub.stop()
    return Figures(peak, pct(closed, 0.99), slowest, pct(latencies, 0.5), pct(latencies, 0.99))


async def messages(args: argparse.Namespace) -> tuple[float, dict[int, list[Figures]]]:
    results: dict[int, list[Figures]] = {n: [] for n in args.automations}
    rate = args.rate
    for r in range(args.rounds):
        for n in args.automations:  # interleaved: drift on the machine hits each alike
            figures = await message_round(n, args, rate)
            rate = rate or figures.peak / 2  # the first configuration's half peak, for all
            results[n].append(figures)
            print(
                f"round {r + 1}, {n} automations: first replies {figures.first:.0f} ms; "
                f"peak {figures.peak:.0f} replies/s; "
                f"at {rate:.0f}/s p50 {figures.p50:.1f} ms p99 {figures.p99:.1f} ms",
                file=sys.stderr,
            )
    assert rate is not None
    return rate, results


# --- part 2: no_reply deadlines falling due together ------------------------------------


def conversations(db: Path, space_id: int, count: int) -> list[tuple[int, int]]:
    """`count` web-chat contacts, each with its identity and open conversation, in bulk:
    (contact, conversation)."""
    at = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(db) as conn:
        channel = conn.execute(
            f"SELECT id FROM {channels.name} WHERE space_id = ? AND kind = 'webchat'", (space_id,)
        ).fetchone()[0]
        first = 1 + max(
            conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            for table in ("contacts", "identities", "conversations")
        )
        ids = range(first, first + count)  # contact = identity = conversation id: all new
        conn.executemany(
            "INSERT INTO contacts (id, space_id, name, created_at, last_message_at) "
            "VALUES (?, ?, ?, ?, ?)",
            ((i, space_id, f"Visitor {i}", at, at) for i in ids),
        )
        conn.executemany(
            "INSERT INTO identities (id, contact_id, channel_id, external_id) VALUES (?, ?, ?, ?)",
            ((i, i, channel, f"bench-visitor-{i}") for i in ids),
        )
        conn.executemany(
            "INSERT INTO conversations (id, space_id, contact_id, channel_id, identity_id, "
            "created_at, last_message_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((i, space_id, i, channel, i, at, at) for i in ids),
        )
    return [(i, i) for i in ids]


def due_together(
    db: Path, space_id: int, automation_id: int, pairs: list[tuple[int, int]], due: datetime
) -> None:
    """One `no_reply` deadline per conversation, all at `due`: the rows `arm_no_reply`
    writes when we answered and the contact did not."""
    stamp = due.strftime("%Y-%m-%d %H:%M:%S.%f")
    payload = json.dumps({"waits_for": "contact"})
    with sqlite3.connect(db, timeout=30) as conn:
        conn.executemany(
            "INSERT INTO automation_timers (space_id, automation_id, kind, contact_id, "
            "conversation_id, due_at, payload, key) VALUES (?, ?, 'no_reply', ?, ?, ?, ?, ?)",
            (
                (space_id, automation_id, c, v, stamp, payload, no_reply_key(automation_id, v))
                for c, v in pairs
            ),
        )


def db_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def timers(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        db = workdir / "bench.db"
        space_id, [automation_id] = await prepare(workdir, FOLLOW_UP)
        pairs = conversations(db, space_id, args.timers)
        hub: Process = server("hub", workdir)
        try:
            await hub.ready()
            # due in a whole second, a little ahead: all rows are in before it comes
            due_epoch = math.ceil(time.time() + 1.5)
            due = datetime.fromtimestamp(due_epoch, UTC).replace(tzinfo=None)
            written = time.perf_counter()
            due_together(db, space_id, automation_id, pairs, due)
            written = time.perf_counter() - written
            assert time.time() < due_epoch, "the timers were written after their due time"
            reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
            deadline = due_epoch + args.timeout
            runs = 0
            seen_last = taken = math.nan  # taken: the clock has turned every timer into work
            while time.time() < deadline:
                runs = reader.execute("SELECT count(*) FROM automation_runs").fetchone()[0]
                if (
                    math.isnan(taken)
                    and time.time() >= due_epoch
                    and not reader.execute("SELECT 1 FROM automation_timers LIMIT 1").fetchone()
                ):
                    taken = time.time() - due_epoch
                if runs >= args.timers:
                    seen_last = time.time() - due_epoch
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # a timer firing twice would show up now
        finally:
            hub.stop()
        first, last, runs, done = reader.execute(
            "SELECT min(created_at), max(created_at), count(*), "
            "sum(status = 'done') FROM automation_runs"
        ).fetchone()
        twice = reader.execute(
            "SELECT count(*) FROM (SELECT automation_id, conversation_id FROM automation_runs "
            "GROUP BY automation_id, conversation_id HAVING count(*) > 1)"
        ).fetchone()[0]
        left = reader.execute("SELECT count(*) FROM automation_timers").fetchone()[0]
        tagged = reader.execute(
            "SELECT count(*) FROM contact_tags JOIN tags ON tags.id = contact_tags.tag_id "
            "WHERE tags.name = 'followed-up'"
        ).fetchone()[0]
        reader.close()
    return {
        "timers": args.timers,
        "written_s": round(written, 3),
        "first_fired_s": round((db_time(first) - due).total_seconds(), 3) if first else None,
        "last_fired_s": round((db_time(last) - due).total_seconds(), 3) if last else None,
        "last_seen_s": round(seen_last, 3),
        "clock_done_s": round(taken, 3),
        "runs": runs,
        "runs_done": done or 0,
        "tagged": tagged,
        "fired_twice": twice,
        "timers_left": left,
    }


# --- the report -------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    figures: dict[str, Any] = {}
    if args.only in (None, "messages"):
        rate, results = await messages(args)
        base = statistics.median(f.peak for f in results[args.automations[0]])
        print(
            f"\nmessages: web chat -> automations -> built-in bot -> reply, {args.visitors} "
            f"visitors; peak: closed loop, {args.messages} messages each; then {rate:.0f} "
            f"messages/s for {args.seconds:g} s; {args.rounds} interleaved rounds (median "
            "[min-max])"
        )
        print(
            f"{'automations':>11} {'first replies ms':>20} {'peak replies/s':>16} {'ratio':>6} "
            f"{'peak p99 ms':>18} "
            f"{'p50 ms at ' + f'{rate:.0f}/s':>18} {'p99 ms at ' + f'{rate:.0f}/s':>20}"
        )
        table: dict[str, Any] = {}
        for n, rs in results.items():
            peak = statistics.median(f.peak for f in rs)
            print(
                f"{n:>11} {spread([f.first for f in rs]):>20} "
                f"{spread([f.peak for f in rs]):>16} {peak / base:>6.2f} "
                f"{spread([f.peak_p99 for f in rs], '{:.1f}'):>18} "
                f"{spread([f.p50 for f in rs], '{:.1f}'):>18} "
                f"{spread([f.p99 for f in rs], '{:.1f}'):>20}"
            )
            table[str(n)] = {
                "first_replies_ms": round(statistics.median(f.first for f in rs), 1),
                "peak_per_s": round(peak, 1),
                "ratio": round(peak / base, 3),
                "peak_p99_ms": round(statistics.median(f.peak_p99 for f in rs), 1),
                "p50_ms": round(statistics.median(f.p50 for f in rs), 1),
                "p99_ms": round(statistics.median(f.p99 for f in rs), 1),
            }
        figures["messages"] = {
            "visitors": args.visitors,
            "rounds": args.rounds,
            "rate_per_s": round(rate, 1),
            "by_automations": table,
        }
    if args.only in (None, "timers"):
        fired = await timers(args)
        print(
            f"\ntimers: {fired['timers']} no_reply deadlines due in the same second "
            f"(written in {fired['written_s']:.2f} s; the clock takes {BATCH} a round)"
        )
        print(
            f"  all taken by the clock {fired['clock_done_s']} s after the due time; "
            f"first run {fired['first_fired_s']} s after it, last "
            f"{fired['last_fired_s']} s (seen {fired['last_seen_s']} s); {fired['runs']} runs "
            f"({fired['runs_done']} done, {fired['tagged']} contacts tagged), "
            f"fired twice: {fired['fired_twice']}, timers left: {fired['timers_left']}"
        )
        figures["timers"] = fired
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=20, help="web-chat visitors")
    parser.add_argument("--messages", type=int, default=50, help="closed-loop messages each")
    parser.add_argument("--seconds", type=float, default=4, help="seconds at the fixed rate")
    parser.add_argument("--rate", type=float, help="the fixed rate (default: half the peak)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument(
        "--automations", type=int, nargs="+", default=[0, 10, 100], help="configurations"
    )
    parser.add_argument("--timers", type=int, default=10_000, help="no_reply timers due at once")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for them")
    parser.add_argument("--only", choices=["messages", "timers"], help="one part alone")
    parser.add_argument("--quick", action="store_true", help="one small round of each")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    args = parser.parse_args()
    if args.quick:
        args.visitors, args.messages, args.seconds, args.rounds = 10, 10, 2, 1
        args.timers = min(args.timers, 2000)
    asyncio.run(main(args))
