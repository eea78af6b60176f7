"""Memory per idle web-chat connection: the hub against a bare aiohttp websocket server.

Opens N websockets to each server (each says hello, as the widget does, then stays
idle) and reads the server process's resident memory before and after.

    .venv/bin/python bench/websockets.py [--connections 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import server, webchat_channel


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def hold(url: str, connections: int, pid: int) -> float:
    """KiB of server memory per idle connection."""
    before = rss_kib(pid)
    sockets = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for start in range(0, connections, 500):
            batch = await asyncio.gather(
                *(
                    session.ws_connect(url, heartbeat=None)
                    for _ in range(start, min(start + 500, connections))
                )
            )
            for ws in batch:
                await ws.send_json({"type": "hello", "token": None})
            for ws in batch:
                await ws.receive_json(timeout=60)
                await ws.receive_json(timeout=60)
            sockets += batch
        await asyncio.sleep(2)
        after = rss_kib(pid)
        await asyncio.gather(*(ws.close() for ws in sockets))
    return (after - before) / connections


async def main(args: argparse.Namespace) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("bare", "hub"):
            process = server(kind, Path(tmp))
            await process.ready()
            try:
                channel = await webchat_channel(process.url)
                url = f"{process.url.replace('http', 'ws')}/webchat/ws?channel={channel}"
                results[kind] = await hold(url, args.connections, process.proc.pid)
            finally:
                process.stop()
    print(f"memory per idle websocket, {args.connections} connections:")
    for kind, kib in results.items():
        print(f"  {kind:5} {kib:6.1f} KiB")
    print(f"  ratio {results['hub'] / results['bare']:.2f}x")
    if args.json:
        figures = {f"{kind}_kib_per_socket": round(kib, 2) for kind, kib in results.items()}
        print(json.dumps({**figures, "ratio": round(results["hub"] / results["bare"], 3)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    asyncio.run(main(parser.parse_args()))
