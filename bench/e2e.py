"""End to end: a web-chat message in -> the built-in bot -> its reply back on the socket.

First the hub's maximum rate is found with every visitor sending its next message as
soon as the reply to the last one arrives; then visitors send at half that rate, on a
fixed schedule, and the time from sending a message to receiving the bot's reply is
measured (p50/p99). The baseline is a bare aiohttp websocket server that answers each
message itself, measured in the same run at the same offered rate.

With `--before DIR` (a checkout of earlier code: `git worktree add DIR REV`), that code
is measured the same way in the same run.

    .venv/bin/python bench/e2e.py [--visitors 40] [--seconds 10] [--rate N] [--before DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import ROOT, before_option, server, webchat_channel


def bare_app() -> web.Application:
    """Answers every message at once: the floor a hub cannot beat."""

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        n = 0
        async for msg in ws:
            frame = msg.json()
            if frame["type"] == "hello":
                await ws.send_json({"type": "session", "token": "t", "visitor": "v"})
                await ws.send_json({"type": "history", "messages": []})
            else:
                n += 1
                await ws.send_json({"type": "ack", "id": frame["id"], "message_id": n})
                reply = {"id": n, "direction": "out", "parts": [{"type": "text", "text": "ok"}]}
                await ws.send_json({"type": "message", "message": reply})
        return ws

    async def index(_: web.Request) -> web.Response:
        return web.Response(text='<div data-channel="bare"></div>', content_type="text/html")

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/webchat/ws", ws_handler)
    return app


async def paced(url: str, visitors: int, rate: float, seconds: float) -> list[float]:
    """Each visitor sends on a fixed schedule (rate/visitors per second); reply latencies."""
    latencies: list[float] = []
    interval = visitors / rate

    async def visitor(session: aiohttp.ClientSession, offset: float) -> None:
        async with session.ws_connect(url) as ws:
            await ws.send_json({"type": "hello", "token": None})
            await ws.receive_json()
            await ws.receive_json()
            # the conversation's first message gets the welcome too: send it before timing
            await ws.send_json({"type": "message", "id": "hello", "text": "hello"})
            while (await ws.receive_json(timeout=30)).get("message", {}).get("direction") != "out":
                pass
            await asyncio.sleep(offset)
            sent: dict[int, float] = {}
            n = 0
            start = time.perf_counter()

            async def reader() -> None:
                async for msg in ws:
                    frame = msg.json()
                    if frame["type"] == "message" and frame["message"]["direction"] == "out":
                        at = sent.pop(min(sent), None) if sent else None
                        if at is not None:
                            latencies.append(time.perf_counter() - at)

            task = asyncio.create_task(reader())
            while time.perf_counter() - start < seconds:
                sent[n] = time.perf_counter()
                text = "pricing" if n % 2 else "opening hours"
                await ws.send_json({"type": "message", "id": f"m{n}", "text": text})
                n += 1
                await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))
            await asyncio.sleep(2)  # the last replies
            task.cancel()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(visitor(session, n * interval / visitors) for n in range(visitors)))
    return sorted(latencies)


async def peak(url: str, visitors: int, messages: int) -> float:
    """Replies per second with each visitor waiting for its reply before asking again."""

    async def visitor(session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(url) as ws:
            await ws.send_json({"type": "hello", "token": None})
            await ws.receive_json()
            await ws.receive_json()
            for n in range(messages):
                text = "hello" if n == 0 else ("pricing" if n % 2 else "opening hours")
                await ws.send_json({"type": "message", "id": f"m{n}", "text": text})
                while (await ws.receive_json(timeout=60)).get("message", {}).get(
                    "direction"
                ) != "out":
                    pass

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(visitor(session) for _ in range(visitors)))
        return visitors * messages / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    return values[min(int(len(values) * q), len(values) - 1)] * 1000 if values else float("nan")


async def measured(
    visitors: int, seconds: float, root: Path, rate: float | None = None
) -> tuple[float, list[float]]:
    """The hub (run by the checkout at `root`): its peak, and the latencies at half of it
    (or at `rate`)."""
    with tempfile.TemporaryDirectory() as tmp:
        hub = server("hub", Path(tmp), root=root)
        await hub.ready()
        try:
            channel = await webchat_channel(hub.url)
            url = f"{hub.url.replace('http', 'ws')}/webchat/ws?channel={channel}"
            most = await peak(url, visitors, 50)
            return most, await paced(url, visitors, rate or most / 2, seconds)
        finally:
            hub.stop()


async def main(args: argparse.Namespace) -> None:
    most, hub_latencies = await measured(args.visitors, args.seconds, ROOT, args.rate)
    offered = args.rate or most / 2
    bare = web.AppRunner(bare_app())
    await bare.setup()
    site = web.TCPSite(bare, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    bare_latencies = await paced(
        f"ws://127.0.0.1:{port}/webchat/ws", args.visitors, offered, args.seconds
    )
    await bare.cleanup()
    of_peak = "the hub's peak:" if args.rate else "half the hub's peak of"
    print(f"end to end at {offered:.0f} messages/s ({of_peak} {most:.0f} replies/s):")
    for name, values in (("bare aiohttp", bare_latencies), ("hub (bot reply)", hub_latencies)):
        p50, p99 = pct(values, 0.5), pct(values, 0.99)
        print(f"  {name:16} {len(values):6} replies  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms")
    figures = {
        "peak_replies_per_s": round(most, 1),
        "rate_per_s": round(offered, 1),  # half the peak, unless --rate
        "half_peak_p50_ms": round(pct(hub_latencies, 0.5), 2),
        "half_peak_p99_ms": round(pct(hub_latencies, 0.99), 2),
        "bare_p99_ms": round(pct(bare_latencies, 0.99), 2),
        "bare_p50_ms": round(pct(bare_latencies, 0.5), 2),
    }
    if args.before:
        then, latencies = await measured(args.visitors, args.seconds, args.before)
        p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
        print(
            f"before ({args.before}): peak {then:.0f} replies/s; at {then / 2:.0f} messages/s "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        figures |= {
            "before_peak_replies_per_s": round(then, 1),
            "before_half_peak_p50_ms": round(p50, 2),
            "before_half_peak_p99_ms": round(p99, 2),
        }
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--rate", type=float, help="messages/s to measure at (default: half the peak)"
    )
    before_option(parser)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    asyncio.run(main(parser.parse_args()))
