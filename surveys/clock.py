"""Flows left unanswered: a reminder after `remind_after_hours`, the end after
`expire_after_hours` (the answers given so far stay saved)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from bot.clock import db_datetime, now
from bot.model import Author, TextPart
from bot.storage.db import Database
from bot.storage.tables import contacts, conversations, flow_runs, surveys
from bot.workspace import conversations as ops
from surveys.definition import Survey, text_in
from surveys.engine import ACTIVE

log = logging.getLogger(__name__)

EVERY = 60.0  # seconds between looks
BATCH = 500


class FlowClock:
    def __init__(self, db: Database, notify_sender: Callable[[], None]) -> None:
        self._db = db
        self._notify = notify_sender

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("flow clock round failed; trying again later")
            await asyncio.sleep(EVERY)

    async def tick(self, at: datetime | None = None) -> tuple[int, int]:
        """Remind and expire what is due at `at` (default: now); (reminded, expired)."""
        at = at or now()
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(flow_runs, surveys.c.definition, contacts.c.language)
                    .join(surveys, surveys.c.id == flow_runs.c.survey_id)
                    .join(contacts, contacts.c.id == flow_runs.c.contact_id)
                    .where(flow_runs.c.status.in_(ACTIVE))
                    .where(flow_runs.c.updated_at < at - timedelta(minutes=1))
                    .order_by(flow_runs.c.updated_at)
                    .limit(BATCH)
                )
            ).all()
        reminded = expired = 0
        for run in rows:
            survey = Survey.model_validate(run.definition)
            idle = at - db_datetime(run.updated_at)
            if idle >= timedelta(hours=survey.expire_after_hours):
                await self._expire(run, at)
                expired += 1
            elif (
                survey.remind_after_hours is not None
                and run.reminded_at is None
                and idle >= timedelta(hours=survey.remind_after_hours)
            ):
                await self._remind(run, survey, at)
                reminded += 1
        if reminded:
            self._notify()
        return reminded, expired

    async def _expire(self, run: sa.Row, at: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                flow_runs.update()
                .where(flow_runs.c.id == run.id, flow_runs.c.status.in_(ACTIVE))
                .values(status="expired", finished_at=at, step=None)
            )
            if run.return_to == "closed":  # a satisfaction survey nobody answered
                await ops.close_for_good(conn, run.conversation_id)
            else:
                await conn.execute(
                    conversations.update()
                    .where(conversations.c.id == run.conversation_id)
                    .where(conversations.c.handler == "flow")
                    .values(handler=run.return_to)
                )
        log.info("flow expired", extra={"run": run.id, "conversation": run.conversation_id})

    async def _remind(self, run: sa.Row, survey: Survey, at: datetime) -> None:
        text = text_in(survey.reminder_text, run.language, survey.language) or "Still there?"
        async with self._db.write() as conn:
            conversation = await ops.get(conn, run.conversation_id)
            await ops.queue_agent_message(
                self._db,
                conn,
                conversation,
                [TextPart(text=text)],
                None,
                f"flow:{run.id}:remind",
                Author.survey(run.survey_id),
            )
            await conn.execute(
                flow_runs.update().where(flow_runs.c.id == run.id).values(reminded_at=at)
            )
