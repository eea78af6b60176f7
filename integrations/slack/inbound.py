"""What `/slack/events` checks before slack-bolt sees a request.

slack-bolt trusts its input: a timestamp that is not a number, a body that is not
JSON, an event that is not an object or nests 100,000 levels all end in a 500 and
a traceback, and a refused signature is logged at INFO with the whole body (legacy
tokens, `response_url`s). So the signature is checked here on the raw bytes, the
body parsed with bounded JSON, and only a request the desk can act on goes further.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from bot.errors import InvalidPayload
from bot.pipeline.untrusted import loads

MAX_SKEW = 300  # seconds; Slack's advice against replayed requests
COMMAND = "/chancenter"
# "assign" is the person select of headers drawn before the Assign modal
BUTTONS = frozenset({"claim", "assign", "assign_open", "back_to_bot", "close"})
EVENTS = frozenset({"message", "app_uninstalled", "tokens_revoked"})
BLOCK_ID = re.compile(r"conversation:[0-9]{1,18}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: int() takes others too
_NUMBER = re.compile(r"[0-9]{1,18}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class Refused(Exception):
    """The request is answered `status` and goes no further."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Ignored(Exception):
    """Signed by Slack but nothing the desk acts on: acknowledged, so Slack does not retry."""


def verify(secret: str, headers: Mapping[str, str], raw: bytes, now: float) -> None:
    """Raise `Refused(401)` unless Slack signed `raw` within the last five minutes."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Refused(401, "bad signature: X-Slack-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > MAX_SKEW:
        raise Refused(401, "bad signature: the request is older than five minutes")
    if not _SIGNATURE.fullmatch(signature):
        raise Refused(401, "bad signature: X-Slack-Signature is not v0=<hex>")
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Refused(401, "bad signature: X-Slack-Signature does not match the body")


def parse(raw: bytes, content_type: str) -> tuple[str, dict[str, Any]]:
    """The body as text and as the object slack-bolt reads from it; `Refused(400)` else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the body is not UTF-8 text") from None
    if not text.strip():
        raise Refused(400, "the body is empty")
    try:
        # the same choice as slack-bolt's parse_body: JSON, else a form, maybe with payload=
        if content_type == "application/json" or text.startswith("{"):
            body = loads(text)
        else:
            form = dict(parse_qsl(text, keep_blank_values=True))
            body = loads(form["payload"], "payload") if "payload" in form else form
    except InvalidPayload as exc:
        raise Refused(400, str(exc)) from None
    if not isinstance(body, dict):
        raise Refused(400, "the body is not a JSON object")
    if not any(isinstance(body.get(k), str) for k in ("type", "command", "ssl_check")):
        raise Refused(400, "not a Slack event, interaction or command")
    return text, body


def check(body: dict[str, Any]) -> None:
    """Raise `Ignored` for a signed request of a shape the desk's listeners cannot use."""
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise Ignored("an event_callback without an event")
        if event["type"] not in EVENTS:
            raise Ignored(f"an event the desk does not subscribe to ({event['type'][:40]})")
        if "thread_ts" in event and not _strings(event, "channel", "user", "ts", "thread_ts"):
            raise Ignored("a thread reply without channel, user and ts")
        if not isinstance(event.get("text", ""), str):
            raise Ignored("a message whose text is not text")
    elif kind == "block_actions":
        actions, user = body.get("actions"), body.get("user")
        action = actions[0] if isinstance(actions, list) and actions else None
        if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
            raise Ignored("a block action without an action")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            raise Ignored("a block action without a user")
        channel = body.get("channel")
        if not isinstance(channel, dict) or not isinstance(channel.get("id"), str):
            raise Ignored("a block action outside a channel")
        if action["action_id"] not in BUTTONS:
            raise Ignored("an action the desk does not offer")
        if not BLOCK_ID.fullmatch(str(action.get("block_id"))):
            raise Ignored("a button that is not on a ChanCenter thread")
        if action["action_id"] == "assign" and not isinstance(action.get("selected_user"), str):
            raise Ignored("an assignment without a selected user")
        if action["action_id"] == "assign_open" and not isinstance(body.get("trigger_id"), str):
            raise Ignored("an Assign button without a trigger to open the modal")
    elif kind == "view_submission":
        view, user = body.get("view"), body.get("user")
        if not isinstance(view, dict) or view.get("callback_id") != "assign":
            raise Ignored("a view the desk did not open")
        if not _NUMBER.fullmatch(str(view.get("private_metadata"))):
            raise Ignored("an Assign view without its conversation")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            raise Ignored("a view submission without a user")
    elif "command" in body:
        if body["command"] != COMMAND:
            raise Ignored("a command the desk does not offer")
        if not _strings(body, "user_id", "channel_id"):
            raise Ignored("a command without user_id and channel_id")
    elif kind != "url_verification" and "ssl_check" not in body:
        raise Ignored("a request the desk does not handle")


def _strings(data: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(data.get(k), str) and data[k] for k in keys)
