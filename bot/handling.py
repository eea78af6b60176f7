"""What a handler sees (`HandlerContext`) and what it may ask for (effects).

Handlers run outside any transaction (a bot may take seconds); what they ask
for is committed afterwards in one transaction together with the work item's
removal, and only if nobody changed the conversation's handler meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from bot.bots import BotProvider
from bot.model import Inbound, Part


@dataclass(frozen=True)
class ConversationState:
    id: int
    space_id: int
    contact_id: int
    channel_id: str
    handler: str  # bot | flow | agent
    status: str
    language: str | None


@dataclass
class HandlerContext:
    event: Inbound
    message_id: int
    opened: bool  # this message opened the conversation
    conversation: ConversationState
    bots: BotProvider
    app: web.Application  # the hub's services, for handlers that administer it
    replies: list[tuple[Part, ...]] = field(default_factory=list)
    new_handler: str | None = None

    def reply(self, *parts: Part) -> None:
        """Queue one outbound message to the contact."""
        self.replies.append(tuple(parts))

    def hand_over(self, handler: str) -> None:
        self.new_handler = handler
