"""Ingest benchmark: web-chat messages acknowledged per second, and ack latency.

The hub (`chancenter serve`) is measured side by side with a bare aiohttp websocket
server that validates the same frames and acks them without storing anything:
on SQLite with the worker and bot running, on SQLite ingesting only (`--no-work`),
and, where PostgreSQL and Redis are installed, as a scale-out `web` process on
PostgreSQL (fsync on) and Redis (commit, then XADD, then the ack). Rounds are
interleaved and each figure is the median of the rounds (min-max in brackets).

With `--before DIR` (a checkout of earlier code: `git worktree add DIR REV`), each hub
variant also runs as that code, interleaved in the same rounds.

    .venv/bin/python bench/ingest.py [--clients 50] [--messages 40] [--rounds 3]
                                     [--before DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the baseline: same frame validation, an ack, nothing stored ---------------------


def bare_app() -> web.Application:
    from channels.webchat.frames import Hello, client_frame

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        n = 0
        async for msg in ws:
            frame = client_frame.validate_json(msg.data)
            if isinstance(frame, Hello):
                await ws.send_json({"type": "session", "token": "t", "visitor": "v"})
                await ws.send_json({"type": "history", "messages": []})
            else:
                n += 1
                await ws.send_json(
                    {"type": "ack", "id": frame.id, "message_id": n, "duplicate": False}
                )
        return ws

    async def index(_: web.Request) -> web.Response:
        return web.Response(text='<script data-channel="bare"></script>')

    app = web.Application()
    app.router.add_get("/webchat/ws", ws_handler)
    app.router.add_get("/", index)
    app.router.add_get("/readyz", lambda _: web.json_response({"status": "ok"}))
    return app


# --- servers as subprocesses, so the load generator has its own core -----------------


def chancenter(env: dict[str, str], *command: str, root: Path = ROOT) -> None:
    """A set-up command (`db upgrade`, `init`) against the database `env` names, run by
    the checkout at `root`."""
    run = [sys.executable, "-m", "bot", *command]
    subprocess.run(run, env=env, cwd=root, check=True, stdout=subprocess.DEVNULL)


class Process:
    """A server in its own process, so the load generator has its own core."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, root: Path = ROOT) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL)

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as s:
            for _ in range(300):
                try:
                    async with s.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(20)


POSTGRES_REDIS = "hub (PostgreSQL+Redis)"


@dataclass
class Services:
    """PostgreSQL and Redis for the scale-out variant; a database per round."""

    postgres: Any
    redis: Any
    rounds: int = 0

    @classmethod
    def start(cls, workdir: Path) -> Services | None:
        sys.path.insert(0, str(ROOT))
        from tests.servers import Postgres, Redis

        for missing in (Postgres.available(), Redis.available()):
            if missing:
                print(f"skipping {POSTGRES_REDIS}: {missing}", file=sys.stderr)
                return None
        postgres, redis = Postgres(durable=True), Redis(workdir / "redis")
        postgres.start()
        redis.start()
        return cls(postgres, redis)

    def fresh(self) -> dict[str, str]:
        self.rounds += 1
        self.postgres.sql(f"CREATE DATABASE bench{self.rounds}")
        return {
            "CHANCENTER_DATABASE_URL": f"{self.postgres.url}/bench{self.rounds}",
            "CHANCENTER_REDIS_URL": f"{self.redis.url[:-1]}{self.rounds % 16}",
        }

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()


def server(
    kind: str, workdir: Path, services: Services | None = None, root: Path = ROOT
) -> Process:
    """`kind` run by the checkout at `root` (`-m bot` imports from the working directory)."""
    port = free_port()
    env = {
        **os.environ,
        "CHANCENTER_PORT": str(port),
        "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "CHANCENTER_DATA_DIR": str(workdir / "data"),
        "CHANCENTER_LOG_LEVEL": "WARNING",
    }
    if kind == POSTGRES_REDIS:
        assert services is not None
        env.update(services.fresh())
        # the Procfile's release step: serve migrates SQLite only
        chancenter(env, "db", "upgrade", root=root)
    if kind == "bare":
        cmd = [sys.executable, __file__, "--bare-server", str(port)]
    else:
        cmd = [sys.executable, "-m", "bot", "serve"]
        if kind == "hub (ingest only)":
            cmd.append("--no-work")
    return Process(cmd, env, port, root)


def before_option(parser: argparse.ArgumentParser) -> None:
    """`--before DIR`: also run the hub as an earlier checkout runs it, in the same rounds."""
    parser.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="also run the hub as an earlier checkout runs it (git worktree add DIR REV)",
    )


async def webchat_channel(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url + "/") as r:
        found = re.search(r'data-channel="([^"]+)"', await r.text())
    assert found, "the demo page has no widget"
    return found.group(1)


@dataclass
class Result:
    rate: float
    p50: float
    p99: float
    replies: float = 0.0  # bot replies that reached the visitors per second meanwhile


async def load(url: str, clients: int, messages: int) -> Result:
    latencies: list[float] = []
    replies = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal replies
        async with session.ws_connect(url) as ws:
            await ws.send_json({"type": "hello", "token": None})
            await ws.receive_json()
            await ws.receive_json()
            for n in range(messages):
                started = time.perf_counter()
                await ws.send_json(
                    {
                        "type": "message",
                        "id": f"m{n}",
                        "text": "pricing" if n % 2 else "opening hours",
                    }
                )
                while (await ws.receive_json(timeout=30))["type"] != "ack":
                    replies += 1  # bot replies arrive on the same socket
                latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return Result(
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
        replies / elapsed,
    )


async def round_of(
    kind: str, clients: int, messages: int, services: Services | None = None, root: Path = ROOT
) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        process = server(kind, Path(tmp), services, root)
        try:
            await process.ready()
            url = f"{process.url}/webchat/ws?channel={await webchat_channel(process.url)}"
            return await load(url, clients, messages)
        finally:
            process.stop()


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    median, low, high = (
        fmt.format(v) for v in (statistics.median(values), min(values), max(values))
    )
    return f"{median} [{low}-{high}]"


async def main(args: argparse.Namespace) -> None:
    base = ["hub", "hub (ingest only)"]
    with tempfile.TemporaryDirectory() as tmp:
        services = None if args.no_postgres else Services.start(Path(tmp))
        if services is not None:
            base.append(POSTGRES_REDIS)
        # label -> (kind, checkout); with --before, each hub again as that checkout runs it
        runs = {"bare": ("bare", ROOT), **{kind: (kind, ROOT) for kind in base}}
        if args.before:
            runs.update({f"{kind}, before": (kind, args.before) for kind in base})
        kinds = list(runs)
        results: dict[str, list[Result]] = {k: [] for k in kinds}
        try:
            for n in range(args.rounds):
                for label, (kind, root) in runs.items():  # interleaved: drift hits all alike
                    result = await round_of(kind, args.clients, args.messages, services, root)
                    results[label].append(result)
                    print(f"round {n + 1} {label}: {result.rate:.0f} msg/s", file=sys.stderr)
        finally:
            if services is not None:
                services.stop()
    bare_rate = statistics.median(r.rate for r in results["bare"])
    print(
        f"\nweb-chat ingest, {args.clients} clients x {args.messages} messages, "
        f"{args.rounds} interleaved rounds (median [min-max])"
    )
    print(
        f"{'server':<30} {'acks/s':>18} {'p50 ms':>16} {'p99 ms':>18} {'ratio':>6} "
        f"{'replies/s meanwhile':>20}"
    )
    for kind in kinds:
        rs = results[kind]
        rate = statistics.median(r.rate for r in rs)
        print(
            f"{kind:<30} {spread([r.rate for r in rs]):>18} "
            f"{spread([r.p50 for r in rs], '{:.1f}'):>16} "
            f"{spread([r.p99 for r in rs], '{:.1f}'):>18} {rate / bare_rate:>6.2f} "
            f"{spread([r.replies for r in rs]):>20}"
        )
    if args.json:

        def ratio(kind: str) -> float | None:
            if kind not in results:
                return None
            return round(statistics.median(r.rate for r in results[kind]) / bare_rate, 3)

        def replies_per_ack(kind: str) -> float | None:
            if kind not in results:
                return None
            rs = results[kind]
            return round(
                statistics.median(r.replies for r in rs) / statistics.median(r.rate for r in rs), 3
            )

        figures: dict[str, float | None] = {"bare_acks_per_s": round(bare_rate)}
        for prefix, suffix in (("", ""), ("before_", ", before")):
            if prefix and not args.before:
                continue
            figures |= {
                f"{prefix}ratio_ingest_only": ratio(f"hub (ingest only){suffix}"),
                f"{prefix}ratio_hub": ratio(f"hub{suffix}"),
                f"{prefix}ratio_postgres_redis": ratio(f"{POSTGRES_REDIS}{suffix}"),
                f"{prefix}replies_per_ack_hub": replies_per_ack(f"hub{suffix}"),
            }
        print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent visitors")
    parser.add_argument("--messages", type=int, default=40, help="messages per visitor")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL+Redis variant"
    )
    before_option(parser)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        sys.path.insert(0, str(ROOT))
        web.run_app(bare_app(), host="127.0.0.1", port=args.bare_server, print=None)
    else:
        asyncio.run(main(args))
