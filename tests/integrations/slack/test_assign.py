"""**Assign...** opens a modal (`views.open`); its submission assigns a person or a team."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import conversations, teams
from tests.fakes.slack import action_body, view_submission_body
from tests.integrations.slack.conftest import INBOX, Desk
from tests.integrations.slack.test_desk import handed_over

FORM = "application/x-www-form-urlencoded"


async def open_modal(desk: Desk, conversation_id: int, user: str) -> dict[str, Any]:
    body = action_body("assign_open", f"conversation:{conversation_id}", user, INBOX)
    assert (await desk.slack_post(body, FORM)).status == 200
    return desk.slack.views[-1]


async def submit(desk: Desk, view: dict[str, Any], values: dict[str, Any], user: str) -> Any:
    resp = await desk.slack_post(view_submission_body(view, values, user), FORM)
    assert resp.status == 200, await resp.text()
    text = await resp.text()
    return json.loads(text) if text else None


async def assignee(desk: Desk, conversation_id: int) -> tuple[int | None, int | None]:
    async with desk.app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(conversations.c.assignee_id, conversations.c.team_id).where(
                    conversations.c.id == conversation_id
                )
            )
        ).one()
    return row.assignee_id, row.team_id


async def test_the_modal_assigns_a_person(desk: Desk) -> None:
    await desk.add_agent("U1", "Bea", "bea@example.com")
    caio = await desk.add_agent("U2", "Caio", "caio@example.com")
    conversation_id, header = await handed_over(desk)
    assert "assign_open" in json.dumps(header.blocks)
    view = await open_modal(desk, conversation_id, "U1")
    assert view["callback_id"] == "assign" and view["private_metadata"] == str(conversation_id)
    assert [b["block_id"] for b in view["blocks"]] == ["person"]  # no team yet

    nothing = await submit(desk, view, {}, "U1")
    assert nothing["response_action"] == "errors" and "Pick a person" in nothing["errors"]["person"]
    assert await assignee(desk, conversation_id) == (None, None)

    picked = {"person": {"person": {"type": "users_select", "selected_user": "U2"}}}
    assert await submit(desk, view, picked, "U1") is None  # closed
    assert (await assignee(desk, conversation_id))[0] == caio


async def test_the_modal_assigns_a_team_and_says_why_it_cannot(desk: Desk) -> None:
    await desk.add_agent("U1", "Bea", "bea@example.com")
    async with desk.app[DB].write() as conn:
        team_id = (
            await conn.execute(
                teams.insert()
                .values(space_id=desk.app[DEFAULT_SPACE], name="Sales")
                .returning(teams.c.id)
            )
        ).scalar_one()
    conversation_id, _ = await handed_over(desk)
    view = await open_modal(desk, conversation_id, "U1")
    (team_block,) = [b for b in view["blocks"] if b["block_id"] == "team"]
    assert [o["value"] for o in team_block["element"]["options"]] == ["Sales"]

    stranger = {"person": {"person": {"type": "users_select", "selected_user": "U9"}}}
    refused = await submit(desk, view, stranger, "U1")  # not a ChanCenter user
    assert refused["response_action"] == "errors"
    unlinked = await submit(desk, view, stranger, "U404")  # the submitter is nobody here
    assert "know who you are" in unlinked["errors"]["person"]

    sales = {"team": {"team": {"selected_option": {"value": "Sales"}}}}
    assert await submit(desk, view, sales, "U1") is None
    assert (await assignee(desk, conversation_id))[1] == team_id
