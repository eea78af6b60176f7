"""What an agent does from Slack, each in one transaction that also queues the thread's update.

Buttons, thread replies and the `/chancenter` command all end here, so a claim is
the same claim whichever way it was asked for.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import ChanCenterError, InvalidPayload, NotFound
from bot.keys import DB, DESK
from bot.model import TextPart
from bot.storage.tables import channels, contacts, conversations, shortcuts, users
from bot.workspace import contacts as contact_ops
from bot.workspace import conversations as ops
from bot.workspace import members
from bot.workspace.agent_work import AgentWork
from bot.workspace.channel_admin import channel_command
from bot.workspace.links import may_administer
from integrations.slack.people import HOW_TO_LINK, user_for
from integrations.slack.safe import inline
from surveys.engine import find_survey
from surveys.start import start_for_contact

USAGE = """*`/chancenter` commands* (ID is the conversation number in the thread header):
`claim ID` · `assign ID @someone` or `assign ID TEAM` · `bot ID` (back to the bot) · `close ID`
`tag ID NAME` · `untag ID NAME` · `field ID KEY VALUE` · `s ID SHORTCUT` (send a shortcut)
`survey NAME ID` (run a survey with the contact; you get them back after)
`away` · `online` (your availability; online lists who is waiting)
`channel add telegram TOKEN` · `channel list` · `channel remove CHANNEL_ID` (managers)"""
MENTION = re.compile(r"^<@([A-Z0-9]+)(\|[^>]*)?>$")


class AgentActions:
    """What the agents of one space's Slack workspace may do: to that space only."""

    def __init__(self, app: web.Application, client: AsyncWebClient, space_id: int) -> None:
        self.app = app
        self.client = client
        self.space_id = space_id
        self.work = AgentWork(app, space_id)

    async def who(self, slack_user_id: str) -> int | None:
        return await user_for(self.app[DB], self.client, self.space_id, slack_user_id)

    async def claim(self, conversation_id: int, user_id: int) -> str:
        changed = await self.work.claim(conversation_id, user_id)
        return f"You have conversation #{conversation_id}." if changed else "It is already yours."

    async def assign(self, conversation_id: int, target: str, by_user_id: int) -> str:
        """To a person (`@someone`) or to a team (round robin among its online members)."""
        mention = MENTION.match(target)
        slack_id = mention.group(1) if mention else None
        user_id = await self.who(slack_id) if slack_id else None
        if slack_id and user_id is None:
            raise NotFound(f"<@{slack_id}> is not a user of this space yet.")
        if user_id is not None:
            await self.work.assign(conversation_id, user_id, by_user_id, take=True)
        else:
            async with self.app[DB].read() as conn:
                team_id = await members.team_named(conn, self.space_id, target.lstrip("@"))
            if team_id is None:
                raise NotFound(f"no user or team {target!r}")
            user_id, _ = await self.work.assign_team(conversation_id, team_id, by_user_id)
        if user_id is None:
            return f"Nobody in {target} is online; #{conversation_id} waits in the team's queue."
        return f"Conversation #{conversation_id} is assigned."

    async def hand_back(self, conversation_id: int) -> str:
        await self.work.hand_back(conversation_id)
        return f"The bot answers #{conversation_id} again."

    async def close(self, conversation_id: int) -> str:
        await self.work.close(conversation_id)
        return f"Closed #{conversation_id}."

    async def _survey(self, which: str, conversation_id: int) -> str:
        async with self.app[DB].read() as conn:
            conversation = await ops.get(conn, conversation_id, self.space_id)
            survey_id, survey = await find_survey(conn, self.space_id, which)
        skipped = await start_for_contact(
            self.app, self.space_id, survey_id, survey, conversation.contact_id, by_agent=True
        )
        if skipped:
            return f"Not started: {skipped}."
        return f"Started {survey.name} for #{conversation_id}; you get them back when it ends."

    async def _waiting(self, conn: AsyncConnection) -> list[Any]:
        """Conversations nobody has taken yet, oldest first: offered to someone coming online."""
        return list(
            (
                await conn.execute(
                    sa.select(conversations.c.id, contacts.c.name, channels.c.kind)
                    .join(contacts, contacts.c.id == conversations.c.contact_id)
                    .join(channels, channels.c.id == conversations.c.channel_id)
                    .where(conversations.c.space_id == self.space_id)
                    .where(conversations.c.handler == "waiting")
                    .where(conversations.c.status == "open")
                    .order_by(conversations.c.id)
                    .limit(10)
                )
            ).all()
        )

    async def reply(self, conversation_id: int, user_id: int, text: str, key: str) -> None:
        """An agent's thread reply, to the contact; a waiting conversation becomes theirs."""
        await self.work.reply(conversation_id, user_id, [TextPart(text=text)], key, claim=True)

    async def note(self, conversation_id: int, user_id: int, text: str, key: str) -> None:
        """A `note:` in the thread: kept on the conversation for the agents, never sent."""
        await self.work.note(conversation_id, user_id, text, key)

    async def command(self, text: str, slack_user_id: str) -> str:
        """`/chancenter ...`: the answer, shown only to the caller."""
        try:
            words = shlex.split(text)
        except ValueError as exc:
            return f"Cannot read that: {exc}\n\n{USAGE}"
        if not words or words[0] == "help":
            return USAGE
        user_id = await self.who(slack_user_id)
        if user_id is None:
            return HOW_TO_LINK.format(slack_id=slack_user_id)
        name, args = words[0], words[1:]
        try:
            return await self._run(name, args, user_id, text)
        except (ChanCenterError, ValueError) as exc:
            return f"{exc}"

    async def _run(self, name: str, args: list[str], user_id: int, text: str) -> str:
        if name in ("away", "online") and not args:
            async with self.app[DB].write() as conn:
                await conn.execute(
                    users.update().where(users.c.id == user_id).values(availability=name)
                )
                waiting = [] if name == "away" else await self._waiting(conn)
            if not waiting:
                return f"You are {name}."
            listed = "\n".join(
                f"• #{c.id} {inline(c.name or 'a contact', 100)} on {c.kind}" for c in waiting
            )
            return f"You are online. Waiting for someone:\n{listed}\nTake one: `claim ID`"
        if name == "channel":
            async with self.app[DB].read() as conn:
                allowed = await may_administer(conn, self.space_id, user_id)
            if not allowed:
                return "Only the space's managers and the organization's admins manage channels."
            return await channel_command(self.app, self.space_id, "/" + text.strip())
        if not args:
            return USAGE
        if name == "survey" and len(args) == 2:
            return await self._survey(args[0], _conversation_id(args[1]))
        conversation_id = _conversation_id(args[0])
        rest = args[1:]
        if name == "claim" and not rest:
            return await self.claim(conversation_id, user_id)
        if name == "close" and not rest:
            return await self.close(conversation_id)
        if name == "bot" and not rest:
            return await self.hand_back(conversation_id)
        if name == "assign" and len(rest) == 1:
            return await self.assign(conversation_id, rest[0], user_id)
        if name in ("tag", "untag") and len(rest) == 1:
            return await self._tag(conversation_id, name, rest[0])
        if name == "field" and len(rest) >= 2:
            return await self._field(conversation_id, rest[0], " ".join(rest[1:]))
        if name == "s" and len(rest) >= 1:
            return await self._shortcut(conversation_id, " ".join(rest), user_id)
        return USAGE

    async def _tag(self, conversation_id: int, action: str, tag: str) -> str:
        async with self.app[DB].write() as conn:
            conversation = await ops.get(conn, conversation_id, self.space_id)
            if action == "tag":
                await contact_ops.tag(conn, self.space_id, conversation.contact_id, [tag])
            else:
                await contact_ops.untag(conn, self.space_id, conversation.contact_id, tag)
            await ops.desk_notice(conn, conversation_id)
        self._wake()
        return f"{'Tagged' if action == 'tag' else 'Untagged'} {tag}."

    async def _field(self, conversation_id: int, key: str, value: str) -> str:
        async with self.app[DB].write() as conn:
            conversation = await ops.get(conn, conversation_id, self.space_id)
            await contact_ops.set_field(conn, self.space_id, conversation.contact_id, key, value)
            await ops.desk_notice(conn, conversation_id)
        self._wake()
        return f"Saved {key} = {value}."

    async def _shortcut(self, conversation_id: int, which: str, user_id: int) -> str:
        mine = sa.or_(shortcuts.c.user_id.is_(None), shortcuts.c.user_id == user_id)
        match = shortcuts.c.id == int(which) if which.isdigit() else shortcuts.c.name == which
        async with self.app[DB].read() as conn:
            await ops.get(conn, conversation_id, self.space_id)
            shortcut_id = (
                await conn.execute(
                    sa.select(shortcuts.c.id)
                    .where(shortcuts.c.space_id == self.space_id, match, mine)
                    .limit(1)
                )
            ).scalar()
        if shortcut_id is None:
            raise NotFound(f"no shortcut {which!r}")
        await self.work.reply(conversation_id, user_id, [], shortcut_id=shortcut_id)
        return f"Sent {which} to the contact."

    def _wake(self) -> None:
        self.app[DESK].notify()


def _conversation_id(word: str) -> int:
    digits = word.lstrip("#")
    if not digits.isdigit():
        raise InvalidPayload(f"{word!r} is not a conversation number (like 42 or #42)")
    return int(digits)
