"""A fake Meta Graph API: the Messenger Send API, WhatsApp Cloud API messages and media.

Errors use Meta's error object `{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`; tests script them with `fail(...)`, and a
proxy's non-JSON error page with `fail_raw(...)`. The access token is only
accepted in the Authorization header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeGraph:
    tokens: set[str] = field(default_factory=lambda: {"PAGE-TOKEN", "WA-TOKEN"})
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    media: dict[str, bytes] = field(default_factory=dict)
    failures: list[tuple[int, dict[str, Any] | str, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    _next: int = 0

    def fail(
        self,
        status: int,
        code: int,
        message: str,
        subcode: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        error: dict[str, Any] = {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "AbC",
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        self.failures.append((status, {"error": error}, headers or {}))

    def fail_raw(self, status: int, text: str) -> None:
        self.failures.append((status, text, {}))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{object_id}/messages", self._messages)
        app.router.add_get("/download/{media_id}", self._download)
        app.router.add_get("/{media_id}", self._media_url)
        return app

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.tokens and "access_token" not in request.query

    async def _messages(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 190, "Invalid OAuth access token.")
        body = await request.json()
        if self.failures:
            status, error, headers = self.failures.pop(0)
            if isinstance(error, str):
                return web.Response(text=error, status=status, content_type="text/html")
            return web.json_response(error, status=status, headers=headers)
        self.sent.append((request.match_info["object_id"], body))
        self._next += 1
        if body.get("messaging_product") == "whatsapp":
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": f"wamid.OUT{self._next}"}],
                }
            )
        return web.json_response(
            {"recipient_id": body["recipient"]["id"], "message_id": f"m_OUT{self._next}"}
        )

    async def _media_url(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 190, "Invalid OAuth access token.")
        media_id = request.match_info["media_id"]
        if media_id not in self.media:
            return _error(400, 100, "Unsupported get request.")
        return web.json_response(
            {"url": f"{self.url}/download/{media_id}", "mime_type": "image/jpeg", "id": media_id}
        )

    async def _download(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 190, "Invalid OAuth access token.")
        return web.Response(body=self.media[request.match_info["media_id"]])


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "AbC",
            }
        },
        status=status,
    )
