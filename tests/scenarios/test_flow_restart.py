"""A web-chat visitor mid-survey, the hub killed with SIGKILL and started again: the survey
goes on at the same question, with the answers given before the crash kept."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import aiohttp

from tests.scenarios.hub import HubProcess

SURVEY = """
name: intake
steps:
  - id: plan
    type: question
    text: Which plan?
    answer: choice
    options: [free, pro]
    save_to: plan
  - id: seats
    type: question
    text: How many seats?
    answer: number
    save_to: seats
completed_text: All set!
"""


async def next_text(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next message the hub sends the visitor (skipping acks, receipts, typing)."""
    while True:
        frame = await ws.receive_json(timeout=15)
        if frame["type"] == "message" and frame["message"]["direction"] == "out":
            return frame["message"]


def words(message: dict[str, Any]) -> str:
    return " ".join(p.get("text", "") for p in message["parts"]).strip()


async def test_a_survey_survives_a_crash_between_two_answers(hub: HubProcess) -> None:
    init = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "init", env=hub.env, stdout=subprocess.PIPE
    )
    out, _ = await init.communicate()
    token = next(line.split()[-1] for line in out.decode().splitlines() if "API token" in line)
    api = {"Authorization": f"Bearer {token}"}
    ws_url = f"{hub.url}/webchat/ws?channel={await hub.webchat_channel()}"
    async with aiohttp.ClientSession() as http:
        for field in (
            {"key": "plan", "type": "choice", "options": ["free", "pro"]},
            {"key": "seats", "type": "number"},
        ):
            assert (
                await http.post(f"{hub.url}/api/v1/fields", json=field, headers=api)
            ).status == 201
        made = await http.post(
            f"{hub.url}/api/v1/surveys",
            data=SURVEY,
            headers={**api, "Content-Type": "application/yaml"},
        )
        survey = (await made.json())["id"]
        async with http.ws_connect(ws_url) as ws:
            await ws.send_json({"type": "hello", "token": None})
            visitor = (await ws.receive_json(timeout=10))["token"]
            await ws.receive_json(timeout=10)  # history
            await ws.send_json({"type": "message", "id": "m1", "text": "hi"})
            assert words(await next_text(ws)).startswith("Hi! I'm")
            contact = (await (await http.get(f"{hub.url}/api/v1/contacts", headers=api)).json())[
                "items"
            ][0]["id"]
            sent = await http.post(
                f"{hub.url}/api/v1/surveys/{survey}/send",
                json={"contact_ids": [contact]},
                headers=api,
            )
            assert (await sent.json())["started"] == 1
            question = await next_text(ws)
            assert words(question) == "Which plan?"
            assert [r["payload"] for r in question["parts"][-1]["replies"]] == ["free", "pro"]
            await ws.send_json({"type": "postback", "id": "m2", "payload": "pro", "title": "pro"})
            assert words(await next_text(ws)) == "How many seats?"

    hub.kill()
    await hub.start()

    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(ws_url) as ws:
            await ws.send_json({"type": "hello", "token": visitor})
            await ws.receive_json(timeout=10)  # session
            history = await ws.receive_json(timeout=10)
            assert words(history["messages"][-1]) == "How many seats?"
            await ws.send_json({"type": "message", "id": "m3", "text": "12"})
            assert words(await next_text(ws)) == "All set!"
        results = await (
            await http.get(f"{hub.url}/api/v1/surveys/{survey}/results", headers=api)
        ).json()
    (run,) = results["items"]
    assert run["status"] == "completed" and run["answers"] == {"plan": "pro", "seats": 12.0}
