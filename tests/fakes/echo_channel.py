"""A minimal webhook channel for exercising the hub's generic pipeline.

Its "platform" signs bodies with HMAC-SHA256 in `X-Echo-Signature` and posts
`{"messages": [{"id", "from", "text"}, ...]}`; what the hub sends is recorded.
Real platforms get their own fakes; this one is the contract at its smallest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from bot.errors import PermanentFailure, RetryLater, WebhookRejected
from bot.model import Event, MessageReceived, Outbound, Sender, SentReceipt, TextPart
from channels.base import Channel

log = logging.getLogger(__name__)
SECRET = b"echo-secret"


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()


class EchoChannel(Channel):
    kind = "echo"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sent: list[Outbound] = []
        # scripted failures, consumed one per send: RetryLater / PermanentFailure instances
        self.failures: list[Exception] = []
        self.hold: asyncio.Event | None = None  # while set here and not set, sends wait
        self.holding = 0  # sends waiting for `hold`

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        given = headers.get("X-Echo-Signature", "")
        if not hmac.compare_digest(given.encode(), sign(raw_body).encode()):
            raise WebhookRejected("bad or missing X-Echo-Signature")

    def parse(self, payload: Any) -> list[Event]:
        events: list[Event] = []
        for item in payload.get("messages", []) if isinstance(payload, dict) else []:
            try:
                events.append(
                    MessageReceived(
                        external_id=str(item["id"]),
                        sender=Sender(external_id=str(item["from"]), name=item.get("name")),
                        parts=(TextPart(text=item["text"]),),
                    )
                )
            except (KeyError, TypeError, ValueError):
                log.info("echo: malformed item skipped")
        return events

    async def send(self, outbound: Outbound) -> SentReceipt:
        if self.hold is not None:
            self.holding += 1
            await self.hold.wait()
            self.holding -= 1
        if self.failures:
            failure = self.failures.pop(0)
            assert isinstance(failure, RetryLater | PermanentFailure)
            raise failure
        self.sent.append(outbound)
        return SentReceipt(external_id=f"echo-out-{outbound.message_id}")
