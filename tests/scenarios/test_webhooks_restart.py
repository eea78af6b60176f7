"""Outgoing webhooks owed when the hub is killed with SIGKILL are all delivered after it
starts again, each with the webhook-id it had before the crash."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import eventually
from tests.fakes.webhook_receiver import receiving
from tests.scenarios.hub import HubProcess

MESSAGES = 5


def _sent_as(event: dict[str, Any]) -> str:
    """The visitor's own id of the message (web chat keys it by visitor: `v...:m1`)."""
    return str(event["data"]["message"]["external_id"]).rsplit(":", 1)[-1]


async def busy(request: web.Request) -> web.Response:
    return web.Response(status=503, headers={"Retry-After": "1"})


async def test_deliveries_pending_at_a_crash_are_not_lost(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path, env={"CHANCENTER_WEBHOOKS_ALLOW_PRIVATE": "true"})
    await hub.start()
    try:
        async with receiving() as receiver:
            receiver.script = [busy] * 10_000  # down until told otherwise
            init = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "init", env=hub.env, stdout=subprocess.PIPE
            )
            out, _ = await init.communicate()
            token = next(
                line.split()[-1] for line in out.decode().splitlines() if "API token" in line
            )
            api = {"Authorization": f"Bearer {token}"}
            ws_url = f"{hub.url}/webchat/ws?channel={await hub.webchat_channel()}"
            async with aiohttp.ClientSession() as http:
                made = await http.post(
                    f"{hub.url}/api/v1/webhooks",
                    json={"url": receiver.url(), "events": ["message.received"]},
                    headers=api,
                )
                assert made.status == 201
                async with http.ws_connect(ws_url) as ws:
                    await ws.send_json({"type": "hello", "token": None})
                    for n in range(MESSAGES):
                        await ws.send_json({"type": "message", "id": f"m{n}", "text": f"hi {n}"})
                    acked = set()
                    while len(acked) < MESSAGES:
                        frame = await ws.receive_json(timeout=15)
                        if frame["type"] == "ack":
                            acked.add(frame["id"])
            await eventually(lambda: len(receiver.requests) >= 3, timeout=15)
            before = {_sent_as(r.json): r.id for r in receiver.requests}

            hub.kill()
            receiver.script = []  # the receiver is back
            await hub.start()

            def delivered() -> set[str]:
                return {_sent_as(r.json) for r in receiver.requests}

            await eventually(lambda: len(delivered()) == MESSAGES, timeout=30)
    finally:
        hub.stop()
    assert delivered() == {f"m{n}" for n in range(MESSAGES)}
    last = {_sent_as(r.json): r.id for r in receiver.requests}
    assert all(last[m] == webhook_id for m, webhook_id in before.items())
