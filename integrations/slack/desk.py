"""What agents see in Slack: one thread per handed-over conversation.

The thread's parent is a header (who, where, state, tags, fields, assignee) with
buttons; it is edited in place as the state changes. The contact's messages are
posted into the thread; media go as links through the hub's signed `/media/` proxy.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.delivery.media import with_media_urls
from bot.storage.db import Database
from bot.storage.tables import (
    channels,
    contacts,
    conversations,
    messages,
    slack_threads,
    teams,
    users,
)
from bot.workspace.contacts import fields_of, shown, tags_of
from integrations.slack.safe import SECTION_LIMIT, TEXT_LIMIT, cut, inert, inline, link

log = logging.getLogger(__name__)

TRANSCRIPT = 10  # messages shown when a thread opens
TRANSCRIPT_EACH = 3_000  # characters of each: ten fit in one Slack message
STATES = {
    "bot": "with the bot",
    "flow": "in a flow",
    "waiting": ":hourglass: waiting for an agent",
    "agent": "with an agent",
}


class SlackDesk:
    def __init__(
        self,
        client: AsyncWebClient,
        db: Database,
        space_id: int,
        inbox: str,
        public_url: str,
        key: bytes,
    ) -> None:
        self.client = client
        self.db = db
        self.space_id = space_id  # the one space this Slack workspace serves
        self.inbox = inbox
        self.public_url = public_url.rstrip("/")
        self.key = key

    async def deliver(
        self, kind: str, conversation_id: int, message_id: int | None, note: str | None
    ) -> None:
        """One desk notice of this space's conversation; raises on a Slack failure (the
        relay retries)."""
        if kind == "alert":  # for the admins, in the inbox itself
            text = f":warning: {inert(note or '')}"
            await self.client.chat_postMessage(channel=self.inbox, text=text)
            return
        async with self.db.read() as conn:
            thread = (
                await conn.execute(
                    sa.select(slack_threads).where(
                        slack_threads.c.conversation_id == conversation_id
                    )
                )
            ).first()
            header = await self._header(conn, conversation_id, note if kind == "handover" else None)
            team_inbox = (
                await conn.execute(
                    sa.select(teams.c.slack_channel)
                    .join(conversations, conversations.c.team_id == teams.c.id)
                    .where(conversations.c.id == conversation_id)
                )
            ).scalar()
        if thread is None:
            # the first notice opens the thread; its transcript holds any message so far
            channel, ts = await self._open(conversation_id, team_inbox or self.inbox, header)
            if kind != "note":
                return
        else:
            channel, ts = thread.slack_channel, thread.ts
        if kind == "note":
            # a flow's summary quotes the contact's answers
            text = inert(note or "")
            await self.client.chat_postMessage(channel=channel, thread_ts=ts, text=text)
        elif kind == "handover":
            await self.client.chat_update(channel=channel, ts=ts, **header)
            if note:
                await self.client.chat_postMessage(
                    channel=channel,
                    thread_ts=ts,
                    text=f":bell: handed over again: {inert(note, 2000)}",
                )
        elif kind == "state":
            await self.client.chat_update(channel=channel, ts=ts, **header)
        elif kind == "message" and message_id is not None:
            async with self.db.read() as conn:
                row = (
                    await conn.execute(sa.select(messages).where(messages.c.id == message_id))
                ).first()
            if row is not None:
                await self.client.chat_postMessage(
                    channel=channel,
                    thread_ts=ts,
                    text=self.message_text(row.channel_id, row.parts),
                    unfurl_links=False,
                )

    async def _open(
        self, conversation_id: int, inbox: str, header: dict[str, Any]
    ) -> tuple[str, str]:
        posted = await self.client.chat_postMessage(channel=inbox, **header)
        channel, ts = posted["channel"], posted["ts"]
        # recorded before anything else is posted: a retry then finds the thread
        async with self.db.write() as conn:
            await conn.execute(
                self.db.insert(slack_threads)
                .values(conversation_id=conversation_id, slack_channel=channel, ts=ts)
                .on_conflict_do_nothing()
            )
        transcript = await self._transcript(conversation_id)
        if transcript:
            await self.client.chat_postMessage(
                channel=channel, thread_ts=ts, text=transcript, unfurl_links=False
            )
        return channel, ts

    def message_text(
        self, channel_id: str, parts: list[dict[str, Any]], limit: int = TEXT_LIMIT
    ) -> str:
        """A message as agents read it; everything the contact chose is `inert`."""
        lines = []
        for part in with_media_urls(self.key, channel_id, parts):
            if part["type"] == "text":
                lines.append(inert(part["text"], limit))
            elif part.get("url"):
                url = part["url"] if "://" in part["url"] else self.public_url + part["url"]
                lines.append(link(url, part.get("caption") or part.get("name") or part["type"]))
            elif part["type"] == "location":
                lines.append(f":round_pushpin: {part['latitude']}, {part['longitude']}")
            elif part["type"] == "postback":
                lines.append(f"[{inline(part.get('title') or part['payload'], 200)}]")
            elif part["type"] == "quick_replies":
                lines.append(" ".join(f"[{inline(r['title'], 200)}]" for r in part["replies"]))
        return cut("\n".join(lines), limit) or "(empty message)"

    async def _transcript(self, conversation_id: int) -> str:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        messages.c.direction, messages.c.channel_id, messages.c.parts, users.c.name
                    )
                    .outerjoin(users, users.c.id == messages.c.sender_user_id)
                    .where(messages.c.conversation_id == conversation_id)
                    .order_by(messages.c.id.desc())
                    .limit(TRANSCRIPT)
                )
            ).all()
        lines = []
        for r in reversed(rows):
            who = "Contact" if r.direction == "in" else inline(r.name or "Bot", 100)
            text = self.message_text(r.channel_id, r.parts, TRANSCRIPT_EACH)
            lines.append(f"*{who}:*\n>" + text.replace("\n", "\n>"))
        return cut("\n".join(lines), TEXT_LIMIT)

    async def _header(
        self, conn: AsyncConnection, conversation_id: int, note: str | None
    ) -> dict[str, Any]:
        c = (
            await conn.execute(
                sa.select(
                    conversations,
                    contacts.c.name.label("contact_name"),
                    contacts.c.phone,
                    contacts.c.email,
                    channels.c.kind,
                    channels.c.name.label("channel_name"),
                    users.c.name.label("assignee_name"),
                    users.c.slack_user_id,
                    teams.c.name.label("team_name"),
                )
                .join(contacts, contacts.c.id == conversations.c.contact_id)
                .join(channels, channels.c.id == conversations.c.channel_id)
                .outerjoin(users, users.c.id == conversations.c.assignee_id)
                .outerjoin(teams, teams.c.id == conversations.c.team_id)
                .where(conversations.c.id == conversation_id)
            )
        ).one()
        tag_names = await tags_of(conn, c.contact_id)
        fields = await fields_of(conn, c.contact_id)
        name = inline(c.contact_name or c.phone or c.email or f"contact {c.contact_id}", 200)
        # closed_at: an agent closed it, even while its satisfaction survey still waits
        closed = c.status == "closed" or c.closed_at is not None
        state = "closed" if closed else STATES.get(c.handler, c.handler)
        assignee = (
            f"<@{c.slack_user_id}>" if c.slack_user_id else inline(c.assignee_name or "nobody", 100)
        )
        queue = f" · Queue: {inline(c.team_name, 100)}" if c.team_name else ""
        lines = [
            f"*{name}* on {c.kind} ({inline(c.channel_name, 100)}) · conversation #{c.id}",
            f"State: {state} · Assignee: {assignee}{queue}",
        ]
        if tag_names:
            lines.append("Tags: " + ", ".join(inline(t, 100) for t in tag_names))
        if fields:
            shown_fields = (f"{inline(k, 100)}={inline(shown(v), 300)}" for k, v in fields.items())
            lines.append("Fields: " + ", ".join(shown_fields))
        if note:
            lines.append(f"Note: {inline(note, 500)}")
        text = cut("\n".join(lines), SECTION_LIMIT)  # text and section both
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}
        ]
        if not closed:
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"conversation:{c.id}",
                    "elements": [
                        _button("Claim", "claim", "primary"),
                        _button("Assign...", "assign_open"),
                        _button("Back to bot", "back_to_bot"),
                        _button("Close", "close", "danger"),
                    ],
                }
            )
        return {"text": text, "blocks": blocks}


def _button(label: str, action_id: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
    }
    if style:
        button["style"] = style
    return button
