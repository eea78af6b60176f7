"""Which ChanCenter user a Slack user is: by Slack user id, else by the email Slack has."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.storage.db import Database
from bot.storage.tables import space_members, users

log = logging.getLogger(__name__)

HOW_TO_LINK = (
    "I don't know who you are in ChanCenter yet. Ask an admin to add you with the email "
    "of your Slack profile (`chancenter users add EMAIL --name NAME`), or to set your Slack "
    "id (`chancenter users set USER --slack-user-id {slack_id}`)."
)


async def user_for(
    db: Database, client: AsyncWebClient, space_id: int, slack_user_id: str
) -> int | None:
    """The space member behind `slack_user_id`; a first match by email is remembered."""
    member = (
        sa.select(users.c.id)
        .join(space_members, space_members.c.user_id == users.c.id)
        .where(space_members.c.space_id == space_id)
    )
    async with db.read() as conn:
        user_id = (
            await conn.execute(member.where(users.c.slack_user_id == slack_user_id))
        ).scalar()
    if user_id is not None:
        return int(user_id)
    try:
        info = await client.users_info(user=slack_user_id)
    except SlackApiError as exc:
        log.warning("users.info failed", extra={"slack_user": slack_user_id, "error": str(exc)})
        return None
    email = (info.get("user") or {}).get("profile", {}).get("email")
    if not email:
        return None
    async with db.write() as conn:
        user_id = (await conn.execute(member.where(users.c.email == email))).scalar()
        if user_id is not None:
            await conn.execute(
                users.update().where(users.c.id == user_id).values(slack_user_id=slack_user_id)
            )
            log.info(
                "Slack user linked by email", extra={"user": user_id, "slack_user": slack_user_id}
            )
    return int(user_id) if user_id is not None else None
