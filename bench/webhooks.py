"""Webhook ingest per channel: signed Telegram, Messenger and WhatsApp webhooks acknowledged
per second, against a bare aiohttp handler that checks the same signature and parses the
same JSON, interleaved rounds, median [min-max].

    .venv/bin/python bench/webhooks.py [--clients 32] [--requests 60] [--rounds 3]

The hub runs `serve --no-work`: what is measured is verify -> parse -> durable commit -> 200.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.ingest import Process, Result, chancenter, free_port, spread  # noqa: E402

SECRET = "bench-app-secret"
TG_SECRET = "bench-telegram-secret"
KINDS = ("telegram", "messenger", "whatsapp")


def payload(kind: str, client: int, n: int) -> dict[str, Any]:
    user, mid = 10_000 + client, client * 1_000_000 + n
    if kind == "telegram":
        return {
            "update_id": mid,
            "message": {
                "message_id": n,
                "date": 1767225600,
                "text": "what are your opening hours?",
                "chat": {"id": user, "type": "private"},
                "from": {"id": user, "is_bot": False, "first_name": "Ana"},
            },
        }
    if kind == "messenger":
        return {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "time": 1,
                    "messaging": [
                        {
                            "sender": {"id": str(user)},
                            "recipient": {"id": "1"},
                            "timestamp": 1767225600000,
                            "message": {"mid": f"m_{mid}", "text": "what are your opening hours?"},
                        }
                    ],
                }
            ],
        }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "W",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "3"},
                            "contacts": [{"profile": {"name": "Ana"}, "wa_id": str(user)}],
                            "messages": [
                                {
                                    "from": str(user),
                                    "id": f"wamid.{mid}",
                                    "timestamp": "1767225600",
                                    "type": "text",
                                    "text": {"body": "what are your opening hours?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def headers(kind: str, raw: bytes) -> dict[str, str]:
    if kind == "telegram":
        return {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def bare_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        raw = await request.read()
        if request.match_info["kind"] == "telegram":
            ok = hmac.compare_digest(
                request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), TG_SECRET
            )
        else:
            expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected)
        if not ok:
            return web.Response(status=401)
        json.loads(raw)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/webhooks/{kind}", handler)
    app.router.add_get("/readyz", lambda _: web.json_response({"status": "ok"}))
    return app


def add_channels(db: Path, secret_key: str) -> None:
    """Channel rows sealed the way `channels add` seals them (no platform to call here)."""
    from bot.workspace.crypto import Vault

    vault = Vault(secret_key.encode())
    meta = {"app_secret": SECRET, "verify_token": "v"}
    creds = {
        "telegram": {"token": "123456:BENCH", "secret_token": TG_SECRET},
        "messenger": {**meta, "page_id": "1", "page_token": "t"},
        "whatsapp": {**meta, "phone_number_id": "3", "access_token": "t"},
    }
    with sqlite3.connect(db) as conn:
        for kind in KINDS:
            conn.execute(
                "INSERT INTO channels (id, space_id, kind, name, credentials, settings) "
                "VALUES (?, 1, ?, ?, ?, '{}')",
                (kind, kind, kind, vault.seal(creds[kind])),
            )


async def load(url: str, kind: str, clients: int, requests: int) -> Result:
    latencies: list[float] = []

    async def client(session: aiohttp.ClientSession, c: int) -> None:
        for n in range(requests):
            raw = json.dumps(payload(kind, c, n)).encode()
            started = time.perf_counter()
            async with session.post(url, data=raw, headers=headers(kind, raw)) as resp:
                assert resp.status == 200, await resp.text()
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session, c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


async def round_of(server: str, kind: str, clients: int, requests: int) -> Result:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CHANCENTER_PORT": str(port),
            "CHANCENTER_LOG_LEVEL": "WARNING",
            "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "CHANCENTER_DATA_DIR": f"{tmp}/data",
            "CHANCENTER_SECRET_KEY": "bench-key",
        }
        if server == "bare":
            proc = Process([sys.executable, __file__, "--bare-server", str(port)], env, port)
        else:
            chancenter(env, "db", "upgrade")
            chancenter(env, "init")
            add_channels(Path(tmp) / "bench.db", "bench-key")
            proc = Process([sys.executable, "-m", "bot", "serve", "--no-work"], env, port)
        try:
            await proc.ready()
            return await load(f"{proc.url}/webhooks/{kind}", kind, clients, requests)
        finally:
            proc.stop()


def pick(results: list[Result], field: str) -> list[float]:
    return [getattr(r, field) for r in results]


async def main(args: argparse.Namespace) -> None:
    results: dict[tuple[str, str], list[Result]] = {}
    for n in range(args.rounds):
        for kind in KINDS:
            for server in ("bare", "hub"):
                result = await round_of(server, kind, args.clients, args.requests)
                results.setdefault((kind, server), []).append(result)
                print(f"round {n + 1} {kind} {server}: {result.rate:.0f}/s", file=sys.stderr)
    print(
        f"\nwebhook ingest (verify, parse, durable commit, 200), {args.clients} clients x "
        f"{args.requests} requests, {args.rounds} interleaved rounds (median [min-max])"
    )
    print(
        f"{'channel':<10} {'server':<6} {'acks/s':>18} {'p50 ms':>16} {'p99 ms':>18} {'ratio':>6}"
    )
    for kind in KINDS:
        bare = statistics.median(pick(results[kind, "bare"], "rate"))
        for server in ("bare", "hub"):
            rs = results[kind, server]
            ratio = statistics.median(pick(rs, "rate")) / bare
            print(
                f"{kind:<10} {server:<6} {spread(pick(rs, 'rate')):>18} "
                f"{spread(pick(rs, 'p50'), '{:.1f}'):>16} "
                f"{spread(pick(rs, 'p99'), '{:.1f}'):>18} {ratio:>6.2f}"
            )
    if args.json:
        figures = {
            f"ratio_{kind}": round(
                statistics.median(pick(results[kind, "hub"], "rate"))
                / statistics.median(pick(results[kind, "bare"], "rate")),
                3,
            )
            for kind in KINDS
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent senders")
    parser.add_argument("--requests", type=int, default=60, help="webhooks per sender")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        web.run_app(bare_app(), host="127.0.0.1", port=args.bare_server, print=None)
    else:
        asyncio.run(main(args))
