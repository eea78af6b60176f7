"""A fake Telegram Bot API server, from the documented contract.

Requests: `POST /bot<token>/<method>` with form or JSON fields; answers are the
`{"ok": true, "result": ...}` envelope, errors `{"ok": false, "error_code",
"description", "parameters": {"retry_after"}}`. Files: `GET /file/bot<token>/<path>`.
Tests script failures with `fail(method, status, description, retry_after)`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    token: str
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class FakeTelegram:
    tokens: set[str] = field(default_factory=lambda: {"123456:TEST-token"})
    calls: list[Call] = field(default_factory=list)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    failures: list[tuple[str, int, str, int | None]] = field(default_factory=list)
    _next_id: int = 100

    def fail(self, method: str, status: int, description: str, retry_after: int | None = None):
        self.failures.append((method, status, description, retry_after))

    def sent(self, method: str | None = None) -> list[Call]:
        sends = [c for c in self.calls if c.method.startswith("send")]
        return [c for c in sends if method is None or c.method == method]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        return app

    async def _method(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = {k: _value(v) for k, v in (await request.post()).items()}
        if token not in self.tokens:
            return _error(401, "Unauthorized")
        self.calls.append(Call(token, method, params))
        for n, (name, status, description, retry_after) in enumerate(self.failures):
            if name == method:
                del self.failures[n]
                return _error(status, description, retry_after)
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        return web.json_response({"ok": True, "result": handler(token, params)})

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self.tokens:
            return web.Response(status=401)
        data = self.files.get(request.match_info["path"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    # --- methods ---------------------------------------------------------------------

    def _getMe(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "Acme Bot",
            "username": "acme_bot",
        }

    def _setWebhook(self, token: str, params: dict[str, Any]) -> bool:
        self.webhooks[token] = params
        return True

    def _deleteWebhook(self, token: str, params: dict[str, Any]) -> bool:
        self.webhooks.pop(token, None)
        return True

    def _answerCallbackQuery(self, token: str, params: dict[str, Any]) -> bool:
        return True

    def _getFile(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params["file_id"]
        path = f"files/{file_id}.bin"
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self.files.get(path, b"")),
            "file_path": path,
        }

    def _message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        self._next_id += 1
        return {
            "message_id": self._next_id,
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            **content,
        }

    def _sendMessage(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._message(params, text=params["text"])

    def _sendLocation(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._message(
            params,
            location={
                "latitude": float(params["latitude"]),
                "longitude": float(params["longitude"]),
            },
        )

    def _media(self, token: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._message(params, caption=params.get("caption"))

    _sendPhoto = _sendDocument = _sendAudio = _sendVideo = _sendSticker = _media


def _value(raw: Any) -> Any:
    """aiogram sends nested values (reply_markup) as JSON strings."""
    if isinstance(raw, str) and raw[:1] in "{[":
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)
