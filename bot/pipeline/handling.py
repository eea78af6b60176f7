"""What a handler sees (`HandlerContext`) and what it may ask for (effects).

Handlers run outside any transaction (a bot may take seconds); what they ask
for is committed afterwards in one transaction together with the work item's
removal, and only if nobody changed the conversation's handler meanwhile.

Handlers and flows meet here, not by importing each other: the context carries the
handover (entry point group `chancenter.handover`) and the flow starter
(`chancenter.flows`) the worker found, and `hand_to_people` / `start_flow` call them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.keys import WEBHOOKS
from bot.metrics import Metrics
from bot.model import BOT, Author, Inbound, Part
from bot.pipeline.bots import BotProvider
from bot.storage.db import Database
from bot.workspace.events import emit, post
from bot.workspace.triggers import fire

Write = Callable[[AsyncConnection], Awaitable[Any]]


class HandOver(Protocol):
    """Hand the conversation to people: who takes it, and what the contact hears."""

    async def __call__(
        self,
        ctx: HandlerContext,
        trigger: str,
        note: str | None = None,
        team: str | None = None,
        agent: str | None = None,
        announce: Sequence[Sequence[Part]] = (),
        by: Author = BOT,
    ) -> None: ...


class FlowStarter(Protocol):
    """Start the flow `which` (a survey's id or name) here; False when there is none."""

    async def __call__(
        self, ctx: HandlerContext, which: str, return_to: str | None = None
    ) -> bool: ...


@dataclass(frozen=True)
class ConversationState:
    id: int
    space_id: int
    contact_id: int
    channel_id: str
    handler: str  # bot | flow | waiting | agent
    status: str
    language: str | None
    bot_fallbacks: int = 0
    away_sent_at: Any = None
    # the space's settings (handover keywords, business hours...) as of loading
    space_settings: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    automations_version: int = 0  # the space's automations changed when this moved
    # the contact's identity on the conversation's channel: where replies go
    identity_id: int | None = None
    recipient: str | None = None
    address: str | None = None  # `identities.address`, for the channels that need it
    blocked: int = 0  # a `Reach`


@dataclass
class HandlerContext:
    """One work item being handled: an inbound message (`event`), or an automation's
    trigger or resumption (`automation`, the work item's payload; `event` None)."""

    event: Inbound | None
    message_id: int | None
    opened: bool  # this message opened the conversation
    conversation: ConversationState
    bots: BotProvider
    db: Database
    metrics: Metrics
    app: web.Application  # the hub itself, for handlers that administer it (admin commands)
    desk_enabled: bool = False
    handover: HandOver | None = None  # the `chancenter.handover` plugin
    flows: FlowStarter | None = None  # the `chancenter.flows` plugin
    key: str = ""  # unique to the work item: replies' dedupe keys start with it
    created: bool = False  # this message's sender is a new contact
    automation: dict[str, Any] | None = None  # a trigger or resumption to run
    depth: int = 0  # how many automations led to what the handlers do now
    replies: list[tuple[tuple[Part, ...], Author]] = field(default_factory=list)
    new_handler: str | None = None
    assignee_id: int | None = None  # with new_handler "agent"
    team_id: int | None = None  # the queue a waiting conversation sits in
    bot_fallbacks: int | None = None  # the new count of fallbacks in a row
    away_sent: bool = False
    set_fields: dict[str, Any] = field(default_factory=dict)
    desk: list[tuple[str, str | None]] = field(default_factory=list)  # (kind, note)
    writes: list[Write] = field(default_factory=list)  # more, in the same transaction
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    def reply(self, *parts: Part, by: Author = BOT) -> None:
        """Queue one outbound message to the contact, sent `by` the bot unless said."""
        self.replies.append((tuple(parts), by))

    def hand_over(self, handler: str) -> None:
        """Set the conversation's next handler (`bot`, `flow`, `waiting`, `agent`)."""
        self.new_handler = handler

    async def hand_to_people(
        self,
        trigger: str,
        note: str | None = None,
        team: str | None = None,
        agent: str | None = None,
        announce: Sequence[Sequence[Part]] = (),
        by: Author = BOT,
    ) -> None:
        """Hand the conversation to people through the installed handover; without one,
        it waits for whoever looks, and the contact hears `announce`."""
        conversation = self.conversation
        self.write(
            partial(
                fire,
                space_id=conversation.space_id,
                trigger="handed_over",
                contact_id=conversation.contact_id,
                conversation_id=conversation.id,
                depth=self.depth,
                team=team,
            )
        )
        if self.handover is not None:
            await self.handover(self, trigger, note, team, agent, announce, by)
            return
        self.hand_over("waiting")
        self.tell_desk("handover", note)
        for parts in announce:
            self.reply(*parts, by=by)

    async def start_flow(self, which: str, return_to: str | None = None) -> bool:
        """Start a flow in this conversation; False when none is installed or found."""
        if self.flows is None:
            return False
        return await self.flows(self, which, return_to)

    def write(self, write: Write) -> None:
        """Run `write` in the transaction that commits the replies (e.g. a flow's state)."""
        self.writes.append(write)

    def then(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the transaction has committed (wake whoever drains it)."""
        self.after_commit.append(callback)

    def emit(self, event_type: str, data: Mapping[str, Any]) -> None:
        """Tell the space's outgoing webhooks, in the commit of what happened."""
        self.write(
            partial(
                emit,
                space_id=self.conversation.space_id,
                event_type=event_type,
                data=data,
                conversation_id=self.conversation.id,
            )
        )
        self.then(self._wake_webhooks)

    def post(self, url: str, body: Mapping[str, Any], what: str) -> None:
        """POST `body` to `url` once this commits, retried by the webhook relay (a flow's
        or automation's own webhook); `what` names it in the deliveries log."""
        self.write(
            partial(
                post,
                space_id=self.conversation.space_id,
                url=url,
                body=body,
                what=what,
                conversation_id=self.conversation.id,
            )
        )
        self.then(self._wake_webhooks)

    def _wake_webhooks(self) -> None:
        relay = self.app.get(WEBHOOKS)
        if relay is not None:
            relay.notify()

    def tell_desk(self, kind: str, note: str | None = None) -> None:
        """Queue a notice for the agent desk: `handover`, `message` (this one), `state`,
        or `alert` (for the admins, with `note`).

        Without a desk (no Slack configured) there is nobody to tell."""
        if self.desk_enabled:
            self.desk.append((kind, note))
