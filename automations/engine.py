"""Automations in the worker: entry point `chancenter.handlers:05-automations`.

They run first for every work item, inside the conversation's order, and what they do
is committed with the item: a message handled twice runs its automations once.

- A message runs `message_received` (and `conversation_opened`, `contact_created`
  when it opened a conversation or made a contact) before the routing; an automation
  that closes the conversation or hands it on decides for the routing too.
- An automation work item (from the clock: an event fired elsewhere, a `no_reply`
  deadline, a `schedule` or `date_field` round, the rest of a run after `wait`) runs
  those automations alone.

A space's automations are compiled once per change (`spaces.automations_version` comes
with the conversation's state), so automations that do not match cost no query.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from automations.actions import Facts, Run, load_facts
from automations.definition import Automation, AutomationAction, OnField, OnSurvey, OnTag
from automations.references import first_problem, names_in
from bot.clock import now
from bot.model import Inbound
from bot.pipeline.handling import HandlerContext
from bot.storage.db import Database
from bot.storage.tables import automation_runs, automation_timers, automations
from bot.workspace.conditions import Predicate, compile_group, reads
from bot.workspace.triggers import arm_no_reply, cancel_no_reply, parse_duration
from handlers.handover import in_business_hours

log = logging.getLogger(__name__)

ON_MESSAGE = ("contact_created", "conversation_opened", "message_received")


@dataclass(frozen=True)
class Compiled:
    id: int
    automation: Automation
    when: Predicate | None
    reads: frozenset[str]
    branches: dict[int, Predicate]  # id(branch condition group) -> its predicate


@dataclass
class Space:
    """One space's enabled automations, by trigger."""

    version: int
    by_trigger: dict[str, list[Compiled]] = field(default_factory=dict)

    def on(self, trigger: str) -> list[Compiled]:
        return self.by_trigger.get(trigger, [])


class Library:
    """Compiled automations per space, for this process (`app[LIBRARY]`)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._spaces: dict[int, Space] = {}
        self._compiling: dict[int, asyncio.Lock] = {}

    async def of(self, space_id: int, version: int) -> Space:
        cached = self._spaces.get(space_id)
        if cached is not None and cached.version == version:
            return cached
        # one compile per change, however many conversations find it stale at once
        async with self._compiling.setdefault(space_id, asyncio.Lock()):
            cached = self._spaces.get(space_id)
            if cached is None or cached.version != version:
                cached = self._spaces[space_id] = await self._compile(space_id, version)
        return cached

    async def _compile(self, space_id: int, version: int) -> Space:
        """Read the enabled automations; one that names what is gone is disabled, with
        the reason, instead of running half-broken."""
        space = Space(version)
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(automations.c.id, automations.c.definition)
                    .where(automations.c.space_id == space_id, automations.c.enabled == 1)
                    .order_by(automations.c.id)
                )
            ).all()
            found = [(row.id, Automation.model_validate(row.definition)) for row in rows]
            names = await names_in(conn, space_id)
            broken = [(i, p) for i, a in found if (p := first_problem(a, names))]
        if broken:
            async with self._db.write() as conn:
                for automation_id, reason in broken:
                    await disable(conn, automation_id, reason)
        gone = {automation_id for automation_id, _ in broken}
        for automation_id, automation in found:
            if automation_id not in gone:
                compiled = _compile(automation_id, automation)
                space.by_trigger.setdefault(automation.trigger.on, []).append(compiled)
        return space


async def disable(conn: AsyncConnection, automation_id: int, reason: str) -> None:
    await conn.execute(
        automations.update()
        .where(automations.c.id == automation_id)
        .values(enabled=0, disabled_reason=reason, updated_at=now())
    )
    # what it waited for goes with it (as when an admin disables it)
    await conn.execute(
        automation_timers.delete().where(automation_timers.c.automation_id == automation_id)
    )
    await conn.execute(
        automation_runs.update()
        .where(automation_runs.c.automation_id == automation_id)
        .where(automation_runs.c.status == "waiting")
        .values(status="disabled")
    )
    log.warning("automation disabled", extra={"automation": automation_id, "reason": reason})


def _compile(automation_id: int, automation: Automation) -> Compiled:
    branches: dict[int, Predicate] = {}
    needs = reads(automation.conditions) if automation.conditions else set()

    def walk(actions: list[AutomationAction]) -> None:
        for action in actions:
            if action.branch is not None:
                branches[id(action.branch.when)] = compile_group(action.branch.when)
                needs.update(reads(action.branch.when))
                walk(action.branch.then)
                walk(action.branch.else_)

    walk(automation.actions)
    when = compile_group(automation.conditions) if automation.conditions else None
    return Compiled(automation_id, automation, when, frozenset(needs), branches)


async def automate(event: Inbound | None, ctx: HandlerContext) -> bool:
    """Entry point `chancenter.handlers:05-automations`. True: nothing more to do with
    this item (an automation work item, or a message whose conversation was closed)."""
    library: Library | None = ctx.app.get(LIBRARY)
    if library is None:
        return ctx.automation is not None
    state = ctx.conversation
    space = await library.of(state.space_id, state.automations_version)
    facts = Facts(state, event)
    if ctx.automation is None:
        _follow_replies(ctx, space)
        for trigger in ON_MESSAGE:
            if trigger == "message_received" or getattr(ctx, _FLAG[trigger]):
                for rule in space.on(trigger):
                    await _run(ctx, rule, trigger, {}, 0, facts)
        return facts.closed
    item = ctx.automation
    if "resume" in item:
        await _resume(ctx, space, item["resume"], facts)
        return True
    trigger, depth = item["on"], item.get("depth", 0)
    for rule in space.on(trigger):
        if item.get("automation_id") in (None, rule.id):
            await _run(ctx, rule, trigger, item.get("attrs") or {}, depth, facts)
    return True


_FLAG = {"conversation_opened": "opened", "contact_created": "created"}


def _follow_replies(ctx: HandlerContext, space: Space) -> None:
    """The contact wrote: deadlines waiting for them end, those waiting for a person start;
    if we answer in this commit, the wait for the contact starts again."""
    rules = space.on("no_reply")
    if not rules:
        return
    waits: dict[str, list[tuple[int, Any]]] = {"contact": [], "agent": []}
    for rule in rules:
        trigger = rule.automation.trigger
        waits[trigger.from_].append((rule.id, parse_duration(trigger.after)))  # type: ignore[union-attr]
    state = ctx.conversation

    async def write(conn: AsyncConnection) -> None:
        at = now()
        await cancel_no_reply(conn, state.id, "contact")
        await arm_no_reply(conn, state, "agent", waits["agent"], at, restart=False)
        if ctx.replies:  # read at commit: what every handler answered
            await arm_no_reply(conn, state, "contact", waits["contact"], at, restart=True)

    ctx.write(write)


async def _run(
    ctx: HandlerContext,
    rule: Compiled,
    trigger: str,
    attrs: dict[str, Any],
    depth: int,
    facts: Facts,
) -> None:
    automation = rule.automation
    if not _trigger_matches(automation, attrs):
        return
    state = ctx.conversation
    if automation.active_hours and not in_business_hours(
        state.space_settings, state.timezone, now()
    ):
        return
    if automation.once_per_contact and await _ran_for(ctx, rule.id, state.contact_id):
        return
    if rule.when is not None:
        await load_facts(ctx, facts, rule.reads)
        if not rule.when(facts.values, facts.tags):
            return
    await Run(ctx, rule.id, automation.name, trigger, depth, facts, rule.branches, attrs).start(
        automation.actions
    )


def _trigger_matches(automation: Automation, attrs: dict[str, Any]) -> bool:
    trigger = automation.trigger
    if isinstance(trigger, OnTag) and trigger.tag is not None:
        return bool(attrs.get("tag") == trigger.tag)
    if isinstance(trigger, OnField):
        return bool(attrs.get("field") == trigger.field)
    if isinstance(trigger, OnSurvey) and trigger.survey is not None:
        return bool(attrs.get("survey") == trigger.survey)
    return True


async def _ran_for(ctx: HandlerContext, automation_id: int, contact_id: int) -> bool:
    async with ctx.db.read() as conn:
        found = await conn.execute(
            sa.select(automation_runs.c.id)
            .where(automation_runs.c.automation_id == automation_id)
            .where(automation_runs.c.contact_id == contact_id)
            .limit(1)
        )
        return found.first() is not None


async def _resume(ctx: HandlerContext, space: Space, resume: dict[str, Any], facts: Facts) -> None:
    """The rest of a run after its `wait`, unless its automation was disabled meanwhile."""
    automation_id = resume["automation_id"]
    rule = next(
        (r for rules in space.by_trigger.values() for r in rules if r.id == automation_id), None
    )
    if rule is None:
        log.info("a waiting run's automation is off; the run ends", extra={"run": resume["run_id"]})
        ctx.write(_end_run(resume["run_id"], "disabled"))
        return
    run = Run(
        ctx,
        rule.id,
        rule.automation.name,
        resume["trigger"],
        resume.get("depth", 0),
        facts,
        rule.branches,
        resume.get("attrs") or {},
        run_id=resume["run_id"],
    )
    await run.start([AutomationAction.model_validate(a) for a in resume["actions"]])


def _end_run(run_id: int, status: str) -> Any:
    async def write(conn: AsyncConnection) -> None:
        await conn.execute(
            automation_runs.update()
            .where(automation_runs.c.id == run_id)
            .values(status=status, updated_at=now())
        )

    return write


LIBRARY: web.AppKey[Library] = web.AppKey("automations", Library)
