"""One automation run: its actions in order, each outcome recorded on the run.

Actions ask the handler context for their effects, so they commit with the work item.
An action that fails (a team that is gone, a value the field refuses) stops the run,
recorded as `failed` with the reason; the message's other handling goes on. A sent
message's fate is the platform's: the run names the message (its dedupe key), and
`GET /automations/{id}/runs` shows whether it was sent, or why it failed.

What the run's actions change fires other automations at `depth + 1` (see
`bot.workspace.triggers` for the rule that stops loops).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from automations.definition import AutomationAction
from bot.clock import now
from bot.errors import ChanCenterError, InvalidPayload, NotFound
from bot.model import Author, Inbound, TextPart, text_of
from bot.pipeline.handling import ConversationState, HandlerContext
from bot.storage.tables import (
    automation_runs,
    automation_timers,
    contacts,
    shortcuts,
    space_members,
    users,
)
from bot.workspace import contacts as contact_ops
from bot.workspace import conversations as ops
from bot.workspace import members
from bot.workspace.conditions import Predicate, compile_group
from bot.workspace.shortcuts import fill, render, template_values
from bot.workspace.triggers import fire, parse_duration

log = logging.getLogger(__name__)


@dataclass
class Facts:
    """What conditions read, loaded once per work item and only if a condition reads it;
    the run's own tags and field writes are applied as it goes."""

    state: ConversationState
    event: Inbound | None
    values: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    loaded: set[str] = field(default_factory=set)
    closed: bool = False  # an action closed the conversation: nothing more to route

    def __post_init__(self) -> None:
        parts = getattr(self.event, "parts", None)
        state = self.state
        self.values.update(
            {
                "message.text": text_of(parts) if parts is not None else None,
                "message.type": getattr(self.event, "type", None),
                "conversation.status": state.status,
                "conversation.handler": state.handler,
                "conversation.channel": state.channel_id,
            }
        )


async def load_facts(ctx: HandlerContext, facts: Facts, needs: frozenset[str]) -> None:
    wanted = {"contact", "fields", "tags"} & needs - facts.loaded
    if not wanted:
        return
    contact_id = facts.state.contact_id
    async with ctx.db.read() as conn:
        row = (await conn.execute(sa.select(contacts).where(contacts.c.id == contact_id))).one()
        for name in (
            "name",
            "phone",
            "email",
            "language",
            "status",
            "created_at",
            "last_message_at",
            "unsubscribed_at",
        ):
            facts.values[name] = getattr(row, name)
        facts.values["assignee"] = facts.values["conversation.assignee"] = row.assignee_id
        facts.values["team"] = facts.values["conversation.team"] = row.team_id
        facts.values["channel"] = facts.state.channel_id
        for key, value in (await contact_ops.fields_of(conn, contact_id)).items():
            facts.values[f"fields.{key}"] = value
        facts.tags = set(await contact_ops.tags_of(conn, contact_id))
    facts.loaded |= {"contact", "fields", "tags"}


@dataclass
class Run:
    ctx: HandlerContext
    automation_id: int
    name: str
    trigger: str
    depth: int  # of the event that started it
    facts: Facts
    branches: dict[int, Predicate]
    attrs: dict[str, Any]
    run_id: int | None = None  # a run resumed after its `wait`
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def author(self) -> Author:
        return Author(type="automation", id=str(self.automation_id))

    async def start(self, actions: list[AutomationAction]) -> None:
        todo = list(actions)
        status, waiting = "done", None
        self.ctx.depth = self.depth + 1  # what the handlers fire meanwhile comes from us
        try:
            while todo:
                action = todo.pop(0)
                if action.wait is not None:
                    waiting = (parse_duration(action.wait), todo)
                    self.steps.append({"action": "wait", "outcome": f"until {_later(action)}"})
                    status = "waiting"
                    break
                if action.branch is not None:
                    chosen = await self._branch(action)
                    todo[:0] = chosen
                    continue
                try:
                    outcome = await self._do(action)
                except ChanCenterError as exc:
                    self.steps.append({"action": action.kind, "error": str(exc)})
                    status = "failed"
                    log.warning(
                        "automation action failed",
                        extra={
                            "automation": self.automation_id,
                            "action": action.kind,
                            "error": str(exc),
                        },
                    )
                    break
                self.steps.append({"action": action.kind, **outcome})
        finally:
            self.ctx.depth = 0
        self.ctx.write(partial(self._record, status=status, waiting=waiting))

    async def _branch(self, action: AutomationAction) -> list[AutomationAction]:
        branch = action.branch
        assert branch is not None
        test = self.branches.get(id(branch.when)) or compile_group(branch.when)
        await load_facts(self.ctx, self.facts, frozenset({"contact", "fields", "tags"}))
        taken = test(self.facts.values, self.facts.tags)
        self.steps.append({"action": "branch", "outcome": "then" if taken else "else"})
        return list(branch.then if taken else branch.else_)

    async def _do(self, action: AutomationAction) -> dict[str, Any]:
        ctx, state, depth = self.ctx, self.facts.state, self.depth + 1
        kind = action.kind
        if kind == "send_message":
            return await self._send(action)
        if kind in ("tag", "untag"):
            name = action.tag or action.untag
            assert name is not None
            if kind == "tag":
                writer = partial(contact_ops.tag, names=[name])
                self.facts.tags.add(name)
            else:
                writer = partial(contact_ops.untag, name=name)
                self.facts.tags.discard(name)
            ctx.write(
                partial(writer, space_id=state.space_id, contact_id=state.contact_id, depth=depth)
            )
            return {"outcome": name}
        if kind == "set_field":
            assert action.set_field is not None
            key, value = next(iter(action.set_field.items()))
            async with ctx.db.read() as conn:  # refused now, not at commit
                await _check_field(conn, state.space_id, key, value)
            ctx.write(
                partial(
                    contact_ops.set_field,
                    space_id=state.space_id,
                    contact_id=state.contact_id,
                    key=key,
                    value=value,
                    depth=depth,
                )
            )
            self.facts.values[f"fields.{key}"] = value
            return {"outcome": f"{key} = {value!r}"}
        if kind == "assign":
            return await self._assign(action)
        if kind == "unassign":
            ctx.write(partial(_unassign, conversation_id=state.id))
            ctx.tell_desk("state")
            return {"outcome": "nobody"}
        if kind == "start_survey":
            assert action.start_survey is not None
            if not await ctx.start_flow(action.start_survey):
                raise NotFound(f"no survey {action.start_survey!r} in this space")
            return {"outcome": action.start_survey}
        if kind == "hand_over":
            target = action.hand_over if action.hand_over is not True else None
            team = target.team if target else None
            note = (target.note if target else None) or f"automation {self.name!r}"
            await ctx.hand_to_people("automation", note=note, team=team, by=self.author)
            return {"outcome": ctx.new_handler or "waiting"}
        if kind == "back_to_bot":
            ctx.hand_over("bot")
            ctx.tell_desk("state")
            return {"outcome": "bot"}
        if kind == "close":
            ctx.write(partial(ops.close, conversation_id=state.id, depth=depth))
            ctx.tell_desk("state")
            self.facts.closed = True
            return {"outcome": "closed"}
        if kind == "note":
            assert action.note is not None
            ctx.write(partial(_note, ctx=ctx, text=action.note, key=self._key("note")))
            ctx.tell_desk("note", action.note)
            return {"outcome": "noted"}
        if kind == "webhook":
            assert action.webhook is not None
            body = {
                "automation": self.name,
                "automation_id": self.automation_id,
                "trigger": self.trigger,
                "contact_id": state.contact_id,
                "conversation_id": state.id,
                **({"attrs": self.attrs} if self.attrs else {}),
            }
            ctx.post(action.webhook, body, what="automation.webhook")
            ctx.emit("automation.webhook", body)  # and to the subscriptions that hear it
            return {"outcome": f"POST {action.webhook}"}
        raise InvalidPayload(f"unknown action {kind!r}")  # the definition refuses it first

    def _key(self, what: str) -> str:
        return f"{self.ctx.key}:a{self.automation_id}:{what}:{len(self.steps)}"

    async def _send(self, action: AutomationAction) -> dict[str, Any]:
        state, ctx = self.facts.state, self.ctx
        async with ctx.db.read() as conn:
            if isinstance(action.send_message, str):
                contact = await contact_ops.get_contact(conn, state.space_id, state.contact_id)
                text = fill(action.send_message, await template_values(conn, contact, None))
                parts: list[Any] = [TextPart(text=text)]
            else:
                assert action.send_message is not None
                shortcut_id = (
                    await conn.execute(
                        sa.select(shortcuts.c.id)
                        .where(shortcuts.c.space_id == state.space_id)
                        .where(shortcuts.c.name == action.send_message.shortcut)
                        .where(shortcuts.c.user_id.is_(None))
                    )
                ).scalar()
                if shortcut_id is None:
                    raise NotFound(f"no shared shortcut {action.send_message.shortcut!r}")
                parts = await render(conn, state.space_id, shortcut_id, state.contact_id, None)
        # the worker writes replies with dedupe keys `<work item key>:<n>`
        key = f"{ctx.key}:{len(ctx.replies)}"
        ctx.reply(*parts, by=self.author)
        return {"outcome": "queued", "message": key}

    async def _assign(self, action: AutomationAction) -> dict[str, Any]:
        """As the API's assign: a member (who answers if people already do), or a team
        (round robin under capacity, else its queue; people answer from now on)."""
        assert action.assign is not None
        ctx, state = self.ctx, self.facts.state
        team_id = None
        async with ctx.db.read() as conn:
            if action.assign.user is not None:
                user_id = (
                    await conn.execute(
                        sa.select(users.c.id)
                        .join(space_members, space_members.c.user_id == users.c.id)
                        .where(space_members.c.space_id == state.space_id)
                        .where(users.c.email == action.assign.user)
                    )
                ).scalar()
                if user_id is None:
                    raise NotFound(f"no member {action.assign.user!r} in this space")
                handler = "agent" if (ctx.new_handler or state.handler) == "waiting" else None
            else:
                team_id = await members.team_named(conn, state.space_id, action.assign.team)
                if team_id is None:
                    raise NotFound(f"no team {action.assign.team!r} in this space")
                user_id = await members.available_member(conn, state.space_id, team_id)
                handler = "agent" if user_id is not None else "waiting"
        if handler is not None and (ctx.new_handler or state.handler) != "flow":
            ctx.hand_over(handler)
        if user_id is not None:
            ctx.assignee_id = user_id
        ctx.team_id = team_id
        ctx.write(
            partial(_assigned, state=state, user_id=user_id, team_id=team_id, depth=self.depth + 1)
        )
        ctx.tell_desk("handover" if handler else "state", f"automation {self.name!r}")
        return {"outcome": f"user {user_id}" if user_id else f"team {team_id}'s queue"}

    async def _record(
        self,
        conn: AsyncConnection,
        status: str,
        waiting: tuple[timedelta, list[AutomationAction]] | None,
    ) -> None:
        state, at = self.facts.state, now()
        if self.run_id is None:
            self.run_id = (
                await conn.execute(
                    automation_runs.insert()
                    .values(
                        automation_id=self.automation_id,
                        space_id=state.space_id,
                        trigger=self.trigger,
                        contact_id=state.contact_id,
                        conversation_id=state.id,
                        status=status,
                        steps=self.steps,
                        created_at=at,
                        updated_at=at,
                    )
                    .returning(automation_runs.c.id)
                )
            ).scalar_one()
        else:
            before = (
                await conn.execute(
                    sa.select(automation_runs.c.steps).where(automation_runs.c.id == self.run_id)
                )
            ).scalar() or []
            await conn.execute(
                automation_runs.update()
                .where(automation_runs.c.id == self.run_id)
                .values(status=status, steps=[*before, *self.steps], updated_at=at)
            )
        if waiting is None:
            return
        after, rest = waiting
        await conn.execute(
            automation_timers.insert().values(
                space_id=state.space_id,
                automation_id=self.automation_id,
                kind="wait",
                contact_id=state.contact_id,
                conversation_id=state.id,
                due_at=at + after,
                payload={
                    "resume": {
                        "run_id": self.run_id,
                        "automation_id": self.automation_id,
                        "trigger": self.trigger,
                        "depth": self.depth,
                        "attrs": self.attrs,
                        "actions": [
                            a.model_dump(mode="json", by_alias=True, exclude_none=True)
                            for a in rest
                        ],
                    }
                },
            )
        )


def _later(action: AutomationAction) -> str:
    assert action.wait is not None
    return (now() + parse_duration(action.wait)).isoformat(timespec="seconds")


async def _check_field(conn: AsyncConnection, space_id: int, key: str, value: Any) -> None:
    row = await contact_ops.field_definition(conn, space_id, key)
    if value is not None:
        contact_ops.stored_value(row.type, row.options or [], key, value)


async def _assigned(
    conn: AsyncConnection,
    state: ConversationState,
    user_id: int | None,
    team_id: int | None,
    depth: int,
) -> None:
    values: dict[str, Any] = {"team_id": team_id} if team_id is not None else {}
    if user_id is not None:
        values["assignee_id"] = user_id
    if values:
        await conn.execute(
            contacts.update().where(contacts.c.id == state.contact_id).values(**values)
        )
    await fire(
        conn,
        state.space_id,
        "conversation_assigned",
        contact_id=state.contact_id,
        conversation_id=state.id,
        depth=depth,
        user_id=user_id,
        team_id=team_id,
    )


async def _unassign(conn: AsyncConnection, conversation_id: int) -> None:
    conversation = await ops.get(conn, conversation_id)
    await ops.assign(conn, conversation, None, None)


async def _note(conn: AsyncConnection, ctx: HandlerContext, text: str, key: str) -> None:
    conversation = await ops.get(conn, ctx.conversation.id)
    await ops.add_note(ctx.db, conn, conversation, text, None, key)
