"""A third party's webhook endpoint: records every request, answers as scripted.

`script` holds the answers to give, one per request, in order (a status, or a whole
`web.StreamResponse` handler result); once it is empty every request gets 204. The
request bodies are kept as received, byte for byte, so tests verify their signatures
with the `standardwebhooks` package as any receiver would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

Answer = int | Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> Any:
        """The payload, once its signature checks out (raises otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.script: list[Answer] = []
        self.server: TestServer | None = None

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def of_type(self, event_type: str) -> list[Seen]:
        return [r for r in self.requests if r.json.get("type") == event_type]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(request.path, dict(request.headers), await request.read()))
        if not self.script:
            return web.Response(status=204)
        answer = self.script.pop(0)
        if isinstance(answer, int):
            return web.Response(status=answer, text=f"answered {answer}")
        return await answer(request)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver._handle)
    receiver.server = TestServer(app)
    await receiver.server.start_server()
    try:
        yield receiver
    finally:
        await receiver.server.close()
