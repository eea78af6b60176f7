"""The **Assign...** modal: a person of the Slack workspace or one of the space's teams.

A modal (`views.open`) rather than a select in the header, so a team can be picked too
and a slip of the mouse assigns nobody; the submission names the conversation in
`private_metadata`, which Slack hands back untouched.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.tables import teams
from integrations.slack.safe import inline

CALLBACK = "assign"
OPEN = "assign_open"  # the header's button
OPTIONS = 100  # Slack's most for a static select


async def modal(conn: AsyncConnection, space_id: int, conversation_id: int) -> dict[str, Any]:
    names = (
        (
            await conn.execute(
                sa.select(teams.c.name)
                .where(teams.c.space_id == space_id)
                .order_by(teams.c.name)
                .limit(OPTIONS)
            )
        )
        .scalars()
        .all()
    )
    blocks: list[dict[str, Any]] = [
        _input("person", "A person", {"type": "users_select", "action_id": "person"}),
    ]
    if names:
        options = [
            {"text": {"type": "plain_text", "text": inline(n, 75)}, "value": n} for n in names
        ]
        select = {"type": "static_select", "action_id": "team", "options": options}
        blocks.append(_input("team", "...or a team (its next available member)", select))
    return {
        "type": "modal",
        "callback_id": CALLBACK,
        "private_metadata": str(conversation_id),
        "title": {"type": "plain_text", "text": f"Assign #{conversation_id}"[:24]},
        "submit": {"type": "plain_text", "text": "Assign"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def choice(view: dict[str, Any]) -> tuple[int, str | None]:
    """The conversation and whom it goes to: `<@U123>` for a person, a team's name, or
    None when nothing was picked."""
    values = (view.get("state") or {}).get("values") or {}
    person = (values.get("person") or {}).get("person") or {}
    team = ((values.get("team") or {}).get("team") or {}).get("selected_option") or {}
    conversation_id = int(view["private_metadata"])
    if person.get("selected_user"):
        return conversation_id, f"<@{person['selected_user']}>"
    return conversation_id, team.get("value")


def _input(block_id: str, label: str, element: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }
