"""A Slack Web API and a Slack that signs its requests, from Slack's documented contracts.

`FakeSlack` answers the Web API methods the desk uses (`auth.test`, `bots.info`,
`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `users.info`,
`conversations.info`, `views.open`, and the OAuth code exchange `oauth.v2.access`) with
Slack's envelope (`{"ok": ...}`), for several workspaces: each bot token is one
workspace's (team) app. It keeps what was posted, with the token that posted it, so
tests can read the channel as an agent would. `signed()` builds the headers Slack
sends: `v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret.
"""

from __future__ import annotations

import base64
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
TOKEN = "xoxb-test"


@dataclass(frozen=True)
class Workspace:
    """A Slack team with our app installed: what its bot token stands for."""

    team_id: str = "T1"
    app_id: str = "A1"
    bot_user: str = BOT_USER
    bot_id: str = "BBOT"
    name: str = "Acme"
    channels: frozenset[str] | None = None  # None: any channel id is one of its


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    user: str | None = None  # ephemeral: the one person who sees it
    token: str = TOKEN  # whose bot posted it


@dataclass(frozen=True)
class Grant:
    """What an OAuth `code` is exchanged for (once)."""

    token: str
    channel_id: str
    client_id: str
    client_secret: str


class FakeSlack:
    def __init__(self) -> None:
        self.messages: list[Posted] = []
        self.ephemeral: list[Posted] = []
        self.updates: list[Posted] = []
        self.views: list[dict[str, Any]] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.workspaces: dict[str, Workspace] = {TOKEN: Workspace()}
        self.grants: dict[str, Grant] = {}
        self.failures = 0  # the next N calls answer 503 (an outage)
        self._ts = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_route("*", "/api/{method}", self._handle)

    def grant(self, code: str, token: str, channel_id: str, client: tuple[str, str]) -> None:
        """An installer approved on Slack's page: `code` goes back to the redirect URL."""
        self.grants[code] = Grant(token, channel_id, *client)

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
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            args.update(await request.json())
        else:
            args.update(await request.post())
        if method == "oauth.v2.access":  # the app's client credentials, not a bot token
            return web.json_response(self._oauth_v2_access(request.headers, args))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.workspaces:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        answer = getattr(self, "_" + method.replace(".", "_"), None)
        if answer is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(answer({**args, "token": token}))

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspaces[args["token"]]
        return {
            "ok": True,
            "user_id": ws.bot_user,
            "bot_id": ws.bot_id,
            "team_id": ws.team_id,
            "team": ws.name,
            "user": "cc",
        }

    def _bots_info(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspaces[args["token"]]
        if args.get("bot") != ws.bot_id:
            return {"ok": False, "error": "bot_not_found"}
        bot = {"id": ws.bot_id, "app_id": ws.app_id, "user_id": ws.bot_user, "name": "cc"}
        return {"ok": True, "bot": bot}

    def _oauth_v2_access(self, headers: Any, args: dict[str, Any]) -> dict[str, Any]:
        """The code exchange: the client authenticates with HTTP Basic (as slack_sdk does)."""
        scheme, _, encoded = headers.get("Authorization", "").partition(" ")
        client = base64.b64decode(encoded).decode() if scheme == "Basic" else ""
        grant = self.grants.pop(str(args.get("code")), None)
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        if client != f"{grant.client_id}:{grant.client_secret}":
            return {"ok": False, "error": "invalid_client_id"}
        ws = self.workspaces[grant.token]
        return {
            "ok": True,
            "access_token": grant.token,
            "token_type": "bot",
            "scope": "chat:write,commands,incoming-webhook",
            "bot_user_id": ws.bot_user,
            "app_id": ws.app_id,
            "team": {"id": ws.team_id, "name": ws.name},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": "UINSTALLER"},
            "incoming_webhook": {
                "channel": "#inbox",
                "channel_id": grant.channel_id,
                "configuration_url": f"https://{ws.name.lower()}.slack.com/services/B1",
                "url": "https://hooks.slack.com/services/T/B/X",
            },
        }

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        ts = f"{1700000000 + next(self._ts)}.000100"
        blocks = args.get("blocks") or []
        posted = Posted(
            args["channel"],
            ts,
            args.get("text", ""),
            _json(blocks),
            args.get("thread_ts"),
            token=args["token"],
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
                token=args["token"],
            )
        )
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(args.get("user", ""))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        known = self.workspaces[args["token"]].channels
        if known is not None and args.get("channel") not in known:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": args.get("channel"), "name": "inbox"}}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        self.views.append({**_json(args["view"]), "trigger_id": args["trigger_id"]})
        return {"ok": True, "view": {"id": f"V{len(self.views)}"}}


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


def event_body(event: dict[str, Any], team: str = "T1", app: str = "A1") -> str:
    """An Events API callback, as Slack wraps each event."""
    return json.dumps(
        {
            "token": "legacy",
            "team_id": team,
            "api_app_id": app,
            "type": "event_callback",
            "event_id": f"Ev{abs(hash(json.dumps(event, sort_keys=True)))}",
            "event_time": int(time.time()),
            "event": event,
        }
    )


def action_body(
    action_id: str,
    block_id: str,
    user: str,
    channel: str,
    team: str = "T1",
    app: str = "A1",
    **extra: Any,
) -> str:
    """A block_actions interaction (form-encoded `payload=`)."""
    payload = {
        "type": "block_actions",
        "team": {"id": team},
        "user": {"id": user},
        "api_app_id": app,
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel},
        "trigger_id": "trigger",
        "actions": [{"action_id": action_id, "block_id": block_id, "type": "button", **extra}],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(
    view: dict[str, Any], values: dict[str, Any], user: str, team: str = "T1", app: str = "A1"
) -> str:
    """The modal `view` (as opened) submitted with `values`: `{block_id: {action_id: ...}}`."""
    payload = {
        "type": "view_submission",
        "team": {"id": team},
        "user": {"id": user},
        "api_app_id": app,
        "trigger_id": "trigger",
        "view": {**view, "id": "V1", "state": {"values": values}},
    }
    return urlencode({"payload": json.dumps(payload)})


def command_body(text: str, user: str, channel: str, team: str = "T1", app: str = "A1") -> str:
    """A slash command (form-encoded)."""
    return urlencode(
        {
            "token": "legacy",
            "team_id": team,
            "channel_id": channel,
            "user_id": user,
            "command": "/chancenter",
            "text": text,
            "response_url": "http://127.0.0.1:9/response",
            "trigger_id": "trigger",
            "api_app_id": app,
        }
    )
