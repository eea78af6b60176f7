"""A Slack Web API and a Slack that signs its requests, from Slack's documented contracts.

`FakeSlack` answers the Web API methods the desk uses (`auth.test`, `chat.postMessage`,
`chat.update`, `chat.postEphemeral`, `users.info`, `conversations.info`, `views.open`)
with Slack's envelope (`{"ok": ...}`), and keeps what was posted so tests can read
the channel as an agent would. `signed()` builds the headers Slack sends: `v0=` +
HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

BOT_USER = "UBOT"


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    user: str | None = None  # ephemeral: the one person who sees it


class FakeSlack:
    def __init__(self) -> None:
        self.messages: list[Posted] = []
        self.ephemeral: list[Posted] = []
        self.updates: list[Posted] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.failures = 0  # the next N calls answer 503 (an outage)
        self._ts = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_route("*", "/api/{method}", self._handle)

    def add_user(self, slack_id: str, name: str, email: str) -> None:
        self.users[slack_id] = {
            "id": slack_id,
            "name": name,
            "real_name": name,
            "profile": {"email": email, "real_name": name},
        }

    def thread(self, ts: str) -> list[Posted]:
        return [m for m in self.messages if m.thread_ts == ts]

    def parent(self, ts: str) -> Posted:
        """The thread's header as it reads now (after any chat.update)."""
        updated = [u for u in self.updates if u.ts == ts]
        return updated[-1] if updated else next(m for m in self.messages if m.ts == ts)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        if self.failures:
            self.failures -= 1
            return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        if request.headers.get("Authorization") != "Bearer xoxb-test":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        else:
            args.update(await request.post())
        answer = getattr(self, "_" + method.replace(".", "_"), None)
        if answer is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(answer(args))

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": BOT_USER, "bot_id": "BBOT", "team_id": "T1", "user": "cc"}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        ts = f"{1700000000 + next(self._ts)}.000100"
        blocks = args.get("blocks") or []
        posted = Posted(
            args["channel"], ts, args.get("text", ""), _json(blocks), args.get("thread_ts")
        )
        self.messages.append(posted)
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": {"text": posted.text}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if not any(m.ts == args.get("ts") for m in self.messages):
            return {"ok": False, "error": "message_not_found"}
        self.updates.append(
            Posted(
                args["channel"], args["ts"], args.get("text", ""), _json(args.get("blocks") or [])
            )
        )
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self.ephemeral.append(
            Posted(
                args["channel"],
                "",
                args.get("text", ""),
                thread_ts=args.get("thread_ts"),
                user=args["user"],
            )
        )
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(args.get("user", ""))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "channel": {"id": args.get("channel"), "name": "inbox"}}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "view": {"id": "V1"}}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def signed(
    secret: str, body: str | bytes, content_type: str, retry: int | None = None
) -> dict[str, str]:
    """The headers Slack sends with a request body (signed over its exact bytes)."""
    timestamp = str(int(time.time()))
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + raw, hashlib.sha256)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
    }
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


def event_body(event: dict[str, Any]) -> str:
    """An Events API callback, as Slack wraps each event."""
    return json.dumps(
        {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": f"Ev{abs(hash(json.dumps(event, sort_keys=True)))}",
            "event_time": int(time.time()),
            "event": event,
        }
    )


def action_body(action_id: str, block_id: str, user: str, channel: str, **extra: Any) -> str:
    """A block_actions interaction (form-encoded `payload=`)."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": user},
        "api_app_id": "A1",
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel},
        "trigger_id": "trigger",
        "actions": [{"action_id": action_id, "block_id": block_id, "type": "button", **extra}],
    }
    return urlencode({"payload": json.dumps(payload)})


def command_body(text: str, user: str, channel: str) -> str:
    """A slash command (form-encoded)."""
    return urlencode(
        {
            "token": "legacy",
            "team_id": "T1",
            "channel_id": channel,
            "user_id": user,
            "command": "/chancenter",
            "text": text,
            "response_url": "http://127.0.0.1:9/response",
            "trigger_id": "trigger",
            "api_app_id": "A1",
        }
    )
