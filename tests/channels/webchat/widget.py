"""A scripted widget and an upload helper, shared by the web-chat tests."""

from __future__ import annotations

import io
from typing import Any

from aiohttp import ClientResponse, FormData
from aiohttp.test_utils import TestClient

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Visitor:
    """A scripted widget: one websocket, frames in order."""

    def __init__(self, client: TestClient, channel: str) -> None:
        self.client, self.channel = client, channel
        self.ws: Any = None
        self.token: str | None = None
        self.visitor: str | None = None

    async def connect(self, token: str | None = None) -> list[dict[str, Any]]:
        self.ws = await self.client.ws_connect(f"/webchat/ws?channel={self.channel}")
        await self.ws.send_json({"type": "hello", "token": token, "language": "en-GB"})
        session = await self.recv("session")
        self.token, self.visitor = session["token"], session["visitor"]
        return (await self.recv("history"))["messages"]

    async def recv(self, kind: str | None = None, timeout: float = 5) -> dict[str, Any]:
        frame = await self.ws.receive_json(timeout=timeout)
        if kind is not None:
            assert frame["type"] == kind, frame
        return frame

    async def say(self, text: str, id: str) -> dict[str, Any]:
        await self.ws.send_json({"type": "message", "id": id, "text": text})
        return await self.recv("ack")

    async def replies(self, n: int) -> list[dict[str, Any]]:
        return [(await self.recv("message"))["message"] for _ in range(n)]


def texts(message: dict[str, Any]) -> list[str]:
    return [p["text"] for p in message["parts"] if p["type"] == "text"]


async def upload(
    client: TestClient, channel: str, token: str | None, data: bytes, mime: str, name: str = "f"
) -> ClientResponse:
    form = FormData()
    form.add_field("file", io.BytesIO(data), content_type=mime, filename=name)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(f"/webchat/upload?channel={channel}", data=form, headers=headers)
