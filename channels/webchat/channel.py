"""`WebchatChannel`: the hub is the platform, so sending is a push to the visitor's sockets."""

from __future__ import annotations

from typing import Any

from bot.model import MessageReceived, Outbound, SentReceipt
from channels.base import Channel, refuse_templates
from channels.webchat.hub import WEBCHAT_HUB


def outbound_external_id(visitor_id: str, message_id: int) -> str:
    """Our outbound message's id on this channel; receipts name it (scoped to the visitor)."""
    return f"{visitor_id}:out:{message_id}"


class WebchatChannel(Channel):
    kind = "webchat"

    def parse(self, payload: Any) -> list[MessageReceived]:
        # Frames arrive over the websocket and are parsed in channels.webchat.frames.
        return []

    def render(self, outbound: Outbound) -> dict[str, Any]:
        return {
            "type": "message",
            "message": {
                "id": outbound.message_id,
                "direction": "out",
                "parts": [p.model_dump(mode="json") for p in outbound.parts],
                "sender_name": outbound.sender_name,
            },
        }

    async def send(self, outbound: Outbound) -> SentReceipt:
        refuse_templates(outbound)
        # A visitor who is away sees the message in their history when they come back.
        await self.ctx.app[WEBCHAT_HUB].push(self.id, outbound.recipient, self.render(outbound))
        return SentReceipt(
            external_id=outbound_external_id(outbound.recipient, outbound.message_id)
        )
