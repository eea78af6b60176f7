"""What an agent does to a conversation, whichever way they ask: the REST API, the Slack
desk or the dashboard. Each act is one transaction that also queues the desk's notice
(the Slack thread shows it), then wakes the desk and the sender.

Example::

    work = AgentWork(app, space_id)
    await work.claim(conversation_id, user_id)
    await work.reply(conversation_id, user_id, [TextPart(text="Hi!")], key="dash:1:abc")
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.keys import DB, DESK, ON_CLOSE, SENDER
from bot.model import Part
from bot.workspace import conversations as ops
from bot.workspace.shortcuts import render


class AgentWork:
    """One space's conversations, as its agents work them."""

    def __init__(self, app: web.Application, space_id: int) -> None:
        self.app = app
        self.space_id = space_id

    async def claim(self, conversation_id: int, user_id: int) -> bool:
        """Take it; False when it was already theirs."""
        async with self.app[DB].write() as conn:
            await ops.get(conn, conversation_id, self.space_id)
            changed = await ops.claim(conn, conversation_id, user_id)
            await self._notice(conn, conversation_id)
        self._wake()
        return changed

    async def assign(
        self,
        conversation_id: int,
        user_id: int | None,
        by_user_id: int | None,
        team_id: int | None = None,
        take: bool = False,
    ) -> Any:
        """To a person (None: nobody), with or without a team; `take`: they answer from
        now on. The conversation as it is after."""
        async with self.app[DB].write() as conn:
            conversation = await ops.get(conn, conversation_id, self.space_id)
            await ops.assign(conn, conversation, user_id, by_user_id, take=take, team_id=team_id)
            await self._notice(conn, conversation_id)
            after = await ops.get(conn, conversation_id)
        self._wake()
        return after

    async def assign_team(
        self, conversation_id: int, team_id: int, by_user_id: int | None
    ) -> tuple[int | None, Any]:
        """Round robin among the team's available members, else its queue: who got it,
        and the conversation as it is after."""
        async with self.app[DB].write() as conn:
            conversation = await ops.get(conn, conversation_id, self.space_id)
            user_id = await ops.assign_team(conn, conversation, team_id, by_user_id)
            await self._notice(conn, conversation_id)
            after = await ops.get(conn, conversation_id)
        self._wake()
        return user_id, after

    async def assign_contact(
        self,
        contact_id: int,
        user_id: int | None,
        team_id: int | None,
        by_user_id: int | None,
        pick: bool = False,
    ) -> tuple[int | None, int | None, list[int]]:
        """The contact to a person (None: nobody) and a team (None: its own stays); with
        `pick`, round robin in the team. Its open conversations follow: (assignee, team,
        the conversations that followed)."""
        async with self.app[DB].write() as conn:
            found = await ops.assign_contact(
                conn, self.space_id, contact_id, user_id, team_id, by_user_id, pick=pick
            )
            for conversation_id in found[2]:
                await self._notice(conn, conversation_id)
        if found[2]:
            self._wake()
        return found

    async def hand_back(self, conversation_id: int) -> None:
        """The bot answers again."""
        async with self.app[DB].write() as conn:
            await ops.get(conn, conversation_id, self.space_id)
            await ops.hand_back(conn, conversation_id)
            await self._notice(conn, conversation_id)
        self._wake()

    async def close(self, conversation_id: int) -> bool:
        """Close it (the contact's next message opens a new one, with the bot); with the
        space's satisfaction survey, it is asked. False: it was closed already."""
        async with self.app[DB].write() as conn:
            await ops.get(conn, conversation_id, self.space_id)
            closed = await ops.close(conn, conversation_id)
            if closed:
                await self._notice(conn, conversation_id)
        if closed:
            self._wake()
            for hook in self.app[ON_CLOSE]:  # closing twice asks no second survey
                await hook(self.app, conversation_id)
        return closed

    async def reply(
        self,
        conversation_id: int,
        user_id: int | None,
        parts: list[Part],
        key: str | None = None,
        shortcut_id: int | None = None,
        claim: bool = False,
    ) -> int | None:
        """Queue a message to the contact (a shortcut rendered for them after `parts`);
        with `claim`, a conversation not yet an agent's becomes the sender's. The new
        message's id, None when `key` was used before (a retried request)."""
        async with self.app[DB].write() as conn:
            conversation = await ops.get(conn, conversation_id, self.space_id)
            if shortcut_id is not None:
                parts = parts + await render(
                    conn, self.space_id, shortcut_id, conversation.contact_id, user_id
                )
            mine = conversation.handler == "agent" and conversation.assignee_id is not None
            if claim and user_id is not None and not mine:
                await ops.claim(conn, conversation_id, user_id)
                await self._notice(conn, conversation_id)
            message_id = await ops.queue_agent_message(
                self.app[DB], conn, conversation, parts, user_id, key
            )
        self.app[SENDER].notify()
        self._wake()
        return message_id

    async def note(
        self, conversation_id: int, user_id: int | None, text: str, key: str | None = None
    ) -> int | None:
        """Kept on the conversation for the agents, never sent."""
        async with self.app[DB].write() as conn:
            conversation = await ops.get(conn, conversation_id, self.space_id)
            return await ops.add_note(self.app[DB], conn, conversation, text, user_id, key)

    async def _notice(self, conn: AsyncConnection, conversation_id: int) -> None:
        desk = self.app.get(DESK)
        if desk is not None and desk.serves(self.space_id):
            await ops.desk_notice(conn, conversation_id)

    def _wake(self) -> None:
        if (desk := self.app.get(DESK)) is not None:
            desk.notify()
