"""One space's slack-bolt app: events, buttons, the Assign modal and the `/chancenter`
command of that space's Slack workspace, routed to the space's agent actions.

`integrations.slack.routing` has checked the signature and picked the space."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ChanCenterError
from bot.keys import DB
from bot.storage.tables import slack_threads
from integrations.slack import assign
from integrations.slack.agent_actions import AgentActions
from integrations.slack.people import HOW_TO_LINK

if TYPE_CHECKING:
    from integrations.slack.desks import Desks

log = logging.getLogger(__name__)
BOLT_LOG = logging.getLogger("integrations.slack.bolt")
"""slack-bolt's own logger: its INFO lines carry request bodies (a refused signature
logs the whole body), so only its warnings and errors are kept."""
BOLT_LOG.setLevel(logging.WARNING)

NOTE = "note:"


def build_bolt(
    desks: Desks, space_id: int, client: AsyncWebClient, signing_secret: str
) -> AsyncApp:
    actions = AgentActions(desks.app, client, space_id)
    bolt = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,  # answer after the commit: a retry finds it done
        logger=BOLT_LOG,  # its loggers take this level (bolt copies it at build time)
    )

    @bolt.event("message")
    async def thread_reply(event: dict[str, Any]) -> None:
        if event.get("subtype") or event.get("bot_id") or not event.get("thread_ts"):
            return  # edits, joins, bot posts and top-level chatter are not replies
        text = (event.get("text") or "").strip()
        if not text:
            return
        async with actions.app[DB].read() as conn:
            conversation_id = (
                await conn.execute(
                    sa.select(slack_threads.c.conversation_id).where(
                        slack_threads.c.slack_channel == event["channel"],
                        slack_threads.c.ts == event["thread_ts"],
                    )
                )
            ).scalar()
        if conversation_id is None:
            return
        user_id = await actions.who(event["user"])
        if user_id is None:
            await _tell(
                client,
                event["channel"],
                event["user"],
                HOW_TO_LINK.format(slack_id=event["user"]),
                event["thread_ts"],
            )
            return
        # the message's ts is its identity: a Slack retry writes nothing twice
        key = f"slack:{event['channel']}:{event['ts']}"
        if text.lower().startswith(NOTE):  # `note:` stays among agents, kept as a note
            if note := text[len(NOTE) :].strip():
                await actions.note(conversation_id, user_id, note, key)
            return
        try:
            await actions.reply(conversation_id, user_id, text, key)
        except ChanCenterError as exc:
            await _tell(
                client, event["channel"], event["user"], f"Not sent: {exc}", event["thread_ts"]
            )

    async def button(ack: AsyncAck, body: dict[str, Any], run: Any) -> None:
        await ack()
        action = body["actions"][0]
        conversation_id = int(action["block_id"].split(":", 1)[1])
        slack_user = body["user"]["id"]
        channel = body["channel"]["id"]
        user_id = await actions.who(slack_user)
        if user_id is None:
            await _tell(client, channel, slack_user, HOW_TO_LINK.format(slack_id=slack_user))
            return
        try:
            await run(conversation_id, user_id, action)
        except ChanCenterError as exc:
            await _tell(client, channel, slack_user, str(exc))

    @bolt.action("claim")
    async def claim(ack: AsyncAck, body: dict[str, Any]) -> None:
        await button(ack, body, lambda c, u, _: actions.claim(c, u))

    @bolt.action("assign")
    async def assign_picked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await button(ack, body, lambda c, u, a: actions.assign(c, f"<@{a['selected_user']}>", u))

    @bolt.action("back_to_bot")
    async def back_to_bot(ack: AsyncAck, body: dict[str, Any]) -> None:
        await button(ack, body, lambda c, u, _: actions.hand_back(c))

    @bolt.action("close")
    async def close(ack: AsyncAck, body: dict[str, Any]) -> None:
        await button(ack, body, lambda c, u, _: actions.close(c))

    @bolt.action(assign.OPEN)
    async def open_assign(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        conversation_id = int(body["actions"][0]["block_id"].split(":", 1)[1])
        async with actions.app[DB].read() as conn:
            view = await assign.modal(conn, space_id, conversation_id)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @bolt.view(assign.CALLBACK)
    async def assigned(ack: AsyncAck, body: dict[str, Any]) -> None:
        conversation_id, target = assign.choice(body["view"])
        if target is None:
            await ack(response_action="errors", errors={"person": "Pick a person or a team."})
            return
        user_id = await actions.who(body["user"]["id"])
        if user_id is None:
            error = HOW_TO_LINK.format(slack_id=body["user"]["id"])
            await ack(response_action="errors", errors={"person": error[:150]})
            return
        try:
            await actions.assign(conversation_id, target, user_id)
        except ChanCenterError as exc:
            await ack(response_action="errors", errors={"person": str(exc)[:150]})
            return
        await ack()  # the thread's header shows the new assignee

    @bolt.event("app_uninstalled")
    async def uninstalled() -> None:
        await desks.uninstall(space_id, "the app was uninstalled from the Slack workspace")

    @bolt.event("tokens_revoked")
    async def revoked(event: dict[str, Any]) -> None:
        if (event.get("tokens") or {}).get("bot"):  # users' tokens are none of ours
            await desks.uninstall(space_id, "the bot token was revoked in Slack")

    @bolt.command("/chancenter")
    async def command(ack: AsyncAck, command: dict[str, Any]) -> None:
        answer = await actions.command(command.get("text", ""), command["user_id"])
        await ack(text=answer, response_type="ephemeral")

    return bolt


async def _tell(
    client: AsyncWebClient, channel: str, user: str, text: str, thread_ts: str | None = None
) -> None:
    """A message only `user` sees."""
    await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
