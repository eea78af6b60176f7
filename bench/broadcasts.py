"""Broadcasts: a large segment sent through a budget, and what it costs conversations.

The hub (`chancenter serve`, SQLite, its own process) sends a broadcast to N contacts
(default 100,000) through a Telegram channel whose budget is `--budget` sends a second,
to a no-op Bot API (its own process) that notes each send's time and chat. Meanwhile
other Telegram contacts write to the same channel at `--rate` messages a second, and the
built-in bot answers them: their replies share the channel's budget with the broadcast.

Figures:
- planning: seconds from the start to the whole segment planned (recipient rows written);
- sends/s of the broadcast between its first and last send, as a share of the budget,
  and the busiest one-second window of all the channel's sends (the platform's limit);
- the hub's resident memory: at the start, the most, and at the end (flat means the
  segment is streamed, not held);
- the p99 of bot replies (webhook posted -> the reply at the platform) for the same
  traffic before the broadcast and during it, and their ratio.

    .venv/bin/python bench/broadcasts.py [--recipients 100000] [--budget 500] [--rate 20]
        [--seconds 10] [--quick] [--json]

With `--json` the last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.ingest import Process, chancenter, free_port  # noqa: E402

TOKEN = "123456:BENCH"
SECRET = "bench-secret-token"
TRAFFIC_CHATS = 40  # each writes every 40/rate seconds: under Telegram's 1 a second a chat
FIRST_TRAFFIC_CHAT = 5_000_000
PROBE_CHAT = 9_999_999  # the bench itself, timing the platform


# --- the no-op platform (its own process) ----------------------------------------------


def platform_app() -> web.Application:
    sends: list[tuple[float, int, str]] = []  # (monotonic time, chat, text)

    async def method(request: web.Request) -> web.Response:
        form = await request.post()
        chat = int(str(form.get("chat_id", "1")))
        sends.append((time.monotonic(), chat, str(form.get("text", ""))))
        result = {  # ids apart from the contacts' own, as Telegram's are per chat
            "message_id": 1_000_000_000 + len(sends),
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private"},
            "text": str(form.get("text", "")),
        }
        return web.json_response({"ok": True, "result": result})

    async def seen(_: web.Request) -> web.Response:
        return web.json_response(sends)

    async def clock(_: web.Request) -> web.Response:
        return web.json_response(time.monotonic())

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", method)
    app.router.add_get("/sends", seen)
    app.router.add_get("/clock", clock)
    app.router.add_get("/readyz", lambda _: web.json_response({"status": "ok"}))
    return app


# --- the hub's database ------------------------------------------------------------------


def seed(db: Path, recipients: int, budget: float) -> None:
    """The channel, N contacts with a Telegram identity each, a view of them, a draft."""
    from bot.workspace.crypto import Vault

    sealed = Vault(b"bench-key").seal({"token": TOKEN, "secret_token": SECRET})
    at = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    segment = json.dumps({"all": [{"field": "name", "op": "starts_with", "value": "r"}]})
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO channels (id, space_id, kind, name, credentials, settings) "
            "VALUES ('telegram', 1, 'telegram', 'telegram', ?, ?)",
            (sealed, json.dumps({"per_second": budget})),
        )
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM contacts").fetchone()[0]
        conn.executemany(
            "INSERT INTO contacts (id, space_id, name, created_at) VALUES (?, 1, ?, ?)",
            ((first + n, f"r{n}", at) for n in range(recipients)),
        )
        conn.executemany(
            "INSERT INTO identities (contact_id, channel_id, external_id) "
            "VALUES (?, 'telegram', ?)",
            ((first + n, str(1_000_000 + n)) for n in range(recipients)),
        )
        view = conn.execute(
            "INSERT INTO views (space_id, name, filter, created_at) VALUES (1, 'recipients', ?, ?)",
            (segment, at),
        ).lastrowid
        conn.execute(
            "INSERT INTO broadcasts (space_id, name, channel_id, view_id, segment, message, "
            "settings, status, created_at) VALUES (1, 'bench', 'telegram', ?, ?, ?, '{}', "
            "'draft', ?)",
            (
                view,
                segment,
                json.dumps({"text": "Hi {{contact.first_name}}, 20% off until Sunday"}),
                at,
            ),
        )


def scalar(db: Path, sql: str) -> object:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql).fetchone()[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- conversation traffic --------------------------------------------------------------


async def traffic(
    hub: str, platform: str, rate: float, seconds: float, first_update: int
) -> tuple[list[float], list[float]]:
    """Telegram contacts write at `rate` a second for `seconds`; each reply's latency (s),
    from the webhook's post to the reply's arrival at the platform; and, meanwhile, the
    platform's own round trip (a send posted straight to it every 50 ms), which is in
    every reply's latency and is not the hub's doing."""
    url = f"{hub}/webhooks/telegram"
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    posted: dict[int, list[float]] = {}  # chat -> monotonic post times, answered in order
    async with aiohttp.ClientSession() as session:
        async with session.get(platform + "/clock") as r:  # the platform's clock vs ours
            offset = await r.json() - time.monotonic()
        started = time.monotonic()
        probe = asyncio.create_task(round_trips(session, platform, seconds))
        n = 0
        while (elapsed := time.monotonic() - started) < seconds:
            chat = FIRST_TRAFFIC_CHAT + n % TRAFFIC_CHATS
            update = {
                "update_id": first_update + n,
                "message": {
                    "message_id": first_update + n,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Traffic"},
                    "text": ("pricing", "opening hours")[n % 2],
                },
            }
            posted.setdefault(chat, []).append(time.monotonic() + offset)
            async with session.post(url, json=update, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            n += 1
            await asyncio.sleep(max(0.0, n / rate - (time.monotonic() - started)))
        del elapsed
        await asyncio.sleep(3.0)  # the last replies
        async with session.get(platform + "/sends") as r:
            sends = await r.json()
    return first_answers(posted, sends), await probe


async def round_trips(session: aiohttp.ClientSession, platform: str, seconds: float) -> list[float]:
    url = f"{platform}/bot{TOKEN}/sendMessage"
    times = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        sent = time.monotonic()
        form = aiohttp.FormData({"chat_id": str(PROBE_CHAT), "text": "probe"})
        async with session.post(url, data=form) as resp:
            await resp.read()
        times.append(time.monotonic() - sent)
        await asyncio.sleep(0.05)
    return times


def first_answers(posted: dict[int, list[float]], sends: list[list[Any]]) -> list[float]:
    """Each message's latency: to the first send to its chat after it (a reply may be
    several messages; the rest are not answers)."""
    by_chat: dict[int, list[float]] = {}
    for at, chat, _ in sends:
        by_chat.setdefault(chat, []).append(at)
    latencies = []
    for chat, times in posted.items():
        arrived = sorted(by_chat.get(chat, []))
        bounds = [*times[1:], float("inf")]
        for at, until in zip(times, bounds, strict=True):
            first = bisect.bisect_left(arrived, at)
            if first < len(arrived) and arrived[first] < until:
                latencies.append(arrived[first] - at)
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000 if ordered else 0.0


def p99(values: list[float]) -> float:
    return pct(values, 0.99)


def busiest_second(times: list[float]) -> int:
    return max((bisect.bisect_left(times, t + 1.0) - n for n, t in enumerate(times)), default=0)


async def main(args: argparse.Namespace) -> dict[str, float]:
    platform_port, port = free_port(), free_port()
    platform = Process(
        [sys.executable, __file__, "--platform", str(platform_port)],
        dict(os.environ),
        platform_port,
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        env = {
            **os.environ,
            "CHANCENTER_PORT": str(port),
            "CHANCENTER_LOG_LEVEL": "WARNING",
            "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
            "CHANCENTER_DATA_DIR": f"{tmp}/data",
            "CHANCENTER_SECRET_KEY": "bench-key",
            "CHANCENTER_TELEGRAM_API_BASE": f"http://127.0.0.1:{platform_port}",
        }
        chancenter(env, "db", "upgrade")
        chancenter(env, "init")
        seed(db, args.recipients, args.budget)
        hub = Process([sys.executable, "-m", "bot", "serve"], env, port)
        try:
            await platform.ready()
            await hub.ready()
            rss = [rss_mb(hub.proc.pid)]
            # the traffic's contacts write once first: their welcome is not a reply
            await traffic(hub.url, platform.url, args.rate, TRAFFIC_CHATS / args.rate, 1)
            print("traffic without a broadcast...", file=sys.stderr)
            quiet, quiet_trips = await traffic(
                hub.url, platform.url, args.rate, args.seconds, 10_000
            )
            with sqlite3.connect(db, timeout=30) as conn:
                conn.execute(
                    "UPDATE broadcasts SET status = 'running', started_at = ?",
                    (datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" "),),
                )
            started = time.monotonic()
            planning = None
            during: list[float] = []
            during_trips: list[float] = []
            traffic_task = None
            while scalar(db, "SELECT status FROM broadcasts") != "completed":
                rss.append(rss_mb(hub.proc.pid))
                if planning is None and scalar(db, "SELECT planned FROM broadcasts"):
                    planning = time.monotonic() - started
                if traffic_task is None and time.monotonic() - started > 3:
                    print("traffic during the broadcast...", file=sys.stderr)
                    traffic_task = asyncio.create_task(
                        traffic(hub.url, platform.url, args.rate, args.seconds, 100_000)
                    )
                if traffic_task is not None and traffic_task.done() and not during:
                    during, during_trips = traffic_task.result()
                await asyncio.sleep(0.2)
            if traffic_task is not None and not during:
                during, during_trips = await traffic_task
            rss.append(rss_mb(hub.proc.pid))
            async with aiohttp.ClientSession() as s, s.get(platform.url + "/sends") as r:
                sends = await r.json()
        finally:
            hub.stop()
            platform.stop()
            if args.keep_db:  # for looking into where the time went
                shutil.copy(db, args.keep_db)
    ours = sorted(at for at, chat, _ in sends if 1_000_000 <= chat < FIRST_TRAFFIC_CHAT)
    everything = sorted(at for at, chat, _ in sends if chat != PROBE_CHAT)
    rate = (len(ours) - 1) / (ours[-1] - ours[0]) if len(ours) > 1 else 0.0
    figures = {
        "recipients": args.recipients,
        "sent": len(ours),
        "budget_per_s": args.budget,
        "planning_s": round(planning or 0.0, 2),
        "sends_per_s": round(rate, 1),
        "share_of_budget": round(rate / args.budget, 3),
        "busiest_second": busiest_second(everything),
        "rss_start_mb": round(rss[0], 1),
        "rss_max_mb": round(max(rss), 1),
        "rss_end_mb": round(rss[-1], 1),
        "reply_p50_ms_without": round(pct(quiet, 0.5), 1),
        "reply_p50_ms_during": round(pct(during, 0.5), 1),
        "reply_p99_ms_without": round(p99(quiet), 1),
        "reply_p99_ms_during": round(p99(during), 1),
        "reply_p99_ratio": round(p99(during) / p99(quiet), 2) if quiet else 0.0,
        "platform_p50_ms_without": round(pct(quiet_trips, 0.5), 1),
        "platform_p50_ms_during": round(pct(during_trips, 0.5), 1),
        "platform_p99_ms_without": round(p99(quiet_trips), 1),
        "platform_p99_ms_during": round(p99(during_trips), 1),
        "replies_without": len(quiet),
        "replies_during": len(during),
    }
    print(
        f"\nbroadcast of {args.recipients:,} through a {args.budget:g}/s budget: planned in "
        f"{figures['planning_s']} s; {figures['sends_per_s']} sends/s = "
        f"{figures['share_of_budget']:.1%} of the budget; busiest second "
        f"{figures['busiest_second']} sends "
        f"({'none over' if figures['busiest_second'] <= args.budget else 'OVER'})\n"
        f"resident memory: {figures['rss_start_mb']} MB at the start, "
        f"{figures['rss_max_mb']} MB at most, {figures['rss_end_mb']} MB at the end\n"
        f"bot replies at {args.rate:g} msg/s: p99 {figures['reply_p99_ms_without']} ms without "
        f"the broadcast ({len(quiet)} replies), {figures['reply_p99_ms_during']} ms during it "
        f"({len(during)}): {figures['reply_p99_ratio']}x; p50 {figures['reply_p50_ms_without']} "
        f"and {figures['reply_p50_ms_during']} ms\n"
        f"the platform's own round trip (in every reply): p50 "
        f"{figures['platform_p50_ms_without']} ms without, {figures['platform_p50_ms_during']} "
        f"ms during; p99 {figures['platform_p99_ms_without']} and "
        f"{figures['platform_p99_ms_during']} ms"
    )
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--budget", type=float, default=500, help="the channel's sends a second")
    parser.add_argument("--rate", type=float, default=20, help="conversation messages a second")
    parser.add_argument("--seconds", type=float, default=10, help="of traffic, each phase")
    parser.add_argument("--quick", action="store_true", help="10,000 recipients")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--keep-db", metavar="PATH", help="copy the hub's database here")
    parser.add_argument("--platform", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.platform:
        web.run_app(platform_app(), host="127.0.0.1", port=args.platform, print=None)
    else:
        if args.quick:
            args.recipients = 10_000
        result = asyncio.run(main(args))
        if args.json:
            print(json.dumps(result))
