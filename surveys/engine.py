"""Running a flow: ask, read the answer, save it, branch, finish.

While a flow runs the conversation's handler is `flow`; each message the contact
sends is one step forward (the queue hands a conversation's messages over one at
a time, in order). The run's state is written in the same transaction as the
replies it caused, so a restart continues at the same question and a retried
message never asks twice.

Flows never import handlers: an end action's handover is the handler context's
(`ctx.hand_to_people`, the `chancenter.handover` entry point).
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import now
from bot.errors import NotFound
from bot.model import (
    Author,
    Inbound,
    MediaPart,
    MessageReceived,
    Part,
    QuickRepliesPart,
    QuickReply,
    TextPart,
    text_of,
)
from bot.pipeline.handling import HandlerContext
from bot.storage.tables import contacts, flow_runs, surveys
from bot.workspace import contacts as contact_ops
from bot.workspace import conversations as ops
from bot.workspace.conditions import holds
from bot.workspace.triggers import fire
from surveys.answers import NotAnAnswer, read_answer
from surveys.definition import END, QuestionStep, Survey, text_in
from surveys.fields import stored

log = logging.getLogger(__name__)

ACTIVE = ("sent", "in_progress")
RATING = tuple(QuickReply(title="⭐" * n, payload=str(n)) for n in range(1, 6))
YES_NO = (QuickReply(title="Yes", payload="yes"), QuickReply(title="No", payload="no"))


async def find_survey(conn: AsyncConnection, space_id: int, which: str | int) -> tuple[int, Survey]:
    """A survey of the space by id or by name."""
    match = surveys.c.id == int(which) if str(which).isdigit() else surveys.c.name == str(which)
    row = (
        await conn.execute(
            sa.select(surveys.c.id, surveys.c.definition).where(
                surveys.c.space_id == space_id, match
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no survey {which!r} in this space")
    return row.id, Survey.model_validate(row.definition)


async def active_run(conn: AsyncConnection, conversation_id: int) -> Any:
    return (
        await conn.execute(
            sa.select(flow_runs)
            .where(flow_runs.c.conversation_id == conversation_id)
            .where(flow_runs.c.status.in_(ACTIVE))
            .order_by(flow_runs.c.id.desc())
            .limit(1)
        )
    ).first()


def render(step: Any, survey: Survey, language: str | None) -> tuple[Part, ...]:
    """A step as the contact sees it; choices become buttons each channel draws natively."""
    parts: list[Part] = []
    text = text_in(step.text, language, survey.language)
    if text:
        parts.append(TextPart(text=text))
    if getattr(step, "media_url", None):
        parts.append(MediaPart(type="image", url=step.media_url))
    if isinstance(step, QuestionStep):
        buttons: tuple[QuickReply, ...] = ()
        if step.answer == "choice":
            buttons = tuple(QuickReply(title=o[:20], payload=o) for o in step.options)
        elif step.answer == "yes_no":
            buttons = YES_NO
        elif step.answer == "rating":
            buttons = RATING
        if buttons:
            parts.append(QuickRepliesPart(replies=buttons))
    return tuple(parts)


def walk(
    survey: Survey, start: str, values: dict[str, Any], tags_: set[str], language: str | None
) -> tuple[list[tuple[Part, ...]], str]:
    """From `start` (a step id or `end`) to the next question: what to send, and where it stops."""
    messages: list[tuple[Part, ...]] = []
    current = start
    for _ in range(len(survey.steps) + 1):  # a loop in the branches cannot spin forever
        if current == END:
            break
        step = survey.step(current)
        if parts := render(step, survey, language):
            messages.append(parts)
        if isinstance(step, QuestionStep):
            return messages, current
        current = following(survey, step, values, tags_)
    return messages, END


def following(survey: Survey, step: Any, values: dict[str, Any], tags_: set[str]) -> str:
    if step.next is None:
        return survey.after(step.id)
    if isinstance(step.next, str):
        return step.next
    for branch in step.next:
        if branch.when is None or holds(branch.when, values, tags_):
            return branch.goto
    return survey.after(step.id)


async def facts(conn: AsyncConnection, contact_id: int) -> tuple[dict[str, Any], set[str]]:
    """What branches may ask about a contact: built-in fields, custom fields, tags."""
    contact = (await conn.execute(sa.select(contacts).where(contacts.c.id == contact_id))).one()
    values: dict[str, Any] = {
        k: getattr(contact, k) for k in ("name", "phone", "email", "language", "status")
    }
    for key, value in (await contact_ops.fields_of(conn, contact_id)).items():
        values[f"fields.{key}"] = value.isoformat() if isinstance(value, datetime) else value
    return values, set(await contact_ops.tags_of(conn, contact_id))


async def run_flow(event: Inbound, ctx: HandlerContext) -> bool:
    """The conversation's handler is `flow`: this message answers the waiting question."""
    conversation = ctx.conversation
    async with ctx.db.read() as conn:
        run = await active_run(conn, conversation.id)
        if run is None:
            ctx.hand_over("bot")  # nothing runs any more (expired meanwhile): the bot answers
            return False
        survey = Survey.model_validate(
            (
                await conn.execute(
                    sa.select(surveys.c.definition).where(surveys.c.id == run.survey_id)
                )
            ).scalar_one()
        )
        values, tags_ = await facts(conn, conversation.contact_id)
    by = Author.survey(run.survey_id)
    language = conversation.language
    answers = dict(run.answers or {})
    values.update({f"answers.{k}": v for k, v in answers.items()})
    text = text_of(event.parts).strip().casefold() if isinstance(event, MessageReceived) else ""
    if text and text in _stop_words(survey, language):
        stopped = text_in(survey.stopped_text, language, survey.language) or "OK."
        ctx.reply(TextPart(text=stopped), by=by)
        _finish(ctx, run, "stopped", answers)
        return True
    question = survey.step(run.step)
    assert isinstance(question, QuestionStep)
    try:
        value = read_answer(question, event, _region(conversation))
    except NotAnAnswer as exc:
        if run.retries < question.max_retries:
            retry = text_in(question.retry_text, language, survey.language)
            ctx.reply(TextPart(text=retry or f"Sorry, {exc}."), by=by)
            ctx.reply(*render(question, survey, language), by=by)
            _update(ctx, run, retries=run.retries + 1)
            return True
        log.info("flow question given up", extra={"run": run.id, "step": question.id})
        if question.on_give_up == "end":
            await _complete(ctx, survey, run, answers, values, tags_)
            return True
        start = following(survey, question, values, tags_)
    else:
        answers[question.id] = value
        values[f"answers.{question.id}"] = value
        if question.save_to:
            ctx.set_fields[question.save_to] = stored(value)
            values[f"fields.{question.save_to}"] = value
        start = following(survey, question, values, tags_)
    messages, waiting = walk(survey, start, values, tags_, language)
    for parts in messages:
        ctx.reply(*parts, by=by)
    if waiting == END:
        await _complete(ctx, survey, run, answers, values, tags_)
    else:
        _update(ctx, run, step=waiting, answers=answers, retries=0, status="in_progress")
    return True


def _stop_words(survey: Survey, language: str | None) -> set[str]:
    lang = (language or "").split("-")[0]
    words = survey.stop_words
    return {w.casefold() for w in (*words.get(lang, ()), *words.get("en", ()))}


def _region(conversation: Any) -> str | None:
    """Phone numbers without a country code are read in the contact's country, if known."""
    language = conversation.language or ""
    return language.split("-")[1].upper() if "-" in language else None


def _update(ctx: HandlerContext, run: Any, **values: Any) -> None:
    values["updated_at"] = now()

    async def write(conn: AsyncConnection) -> None:
        await conn.execute(flow_runs.update().where(flow_runs.c.id == run.id).values(**values))

    ctx.write(write)


def _finish(ctx: HandlerContext, run: Any, status: str, answers: dict[str, Any]) -> None:
    _update(ctx, run, status=status, answers=answers, step=None, finished_at=now())
    if run.return_to == "closed":  # the satisfaction survey of a closed conversation
        ctx.write(partial(ops.close_for_good, conversation_id=run.conversation_id))
        return
    ctx.hand_over(run.return_to)
    if run.return_to == "waiting":  # the away flow: the agents see what the contact said
        summary = ", ".join(f"{k}: {contact_ops.shown(v)}" for k, v in answers.items())
        ctx.tell_desk("note", f"While you were away: {summary or 'no answers'}")


async def _complete(
    ctx: HandlerContext,
    survey: Survey,
    run: Any,
    answers: dict[str, Any],
    values: dict[str, Any],
    tags_: set[str],
) -> None:
    done = text_in(survey.completed_text, ctx.conversation.language, survey.language)
    if done:
        ctx.reply(TextPart(text=done), by=Author.survey(run.survey_id))
    _finish(ctx, run, "completed", answers)
    conversation = ctx.conversation
    ctx.write(
        partial(
            fire,
            space_id=conversation.space_id,
            trigger="survey_completed",
            contact_id=conversation.contact_id,
            conversation_id=conversation.id,
            depth=ctx.depth,
            survey=survey.name,
        )
    )
    ctx.emit(
        "survey.completed",
        {
            "survey": {"id": run.survey_id, "name": survey.name},
            "run_id": run.id,
            "contact_id": conversation.contact_id,
            "conversation_id": conversation.id,
            "answers": answers,
        },
    )
    for action in survey.on_complete:
        await _act(ctx, action, survey, answers)


async def _act(ctx: HandlerContext, action: Any, survey: Survey, answers: dict[str, Any]) -> None:
    space_id, contact_id = ctx.conversation.space_id, ctx.conversation.contact_id
    if action.tag or action.untag:
        name = action.tag or action.untag

        async def tagging(conn: AsyncConnection) -> None:
            if action.tag:
                await contact_ops.tag(conn, space_id, contact_id, [name])
            else:
                await contact_ops.untag(conn, space_id, contact_id, name)

        ctx.write(tagging)
    elif action.set_field:
        ctx.set_fields.update(action.set_field)
    elif action.handover:
        target = action.handover if isinstance(action.handover, dict) else {}
        await ctx.hand_to_people("flow", note=target.get("note"), team=target.get("team"))
    elif action.start_flow:
        await start_here(ctx, action.start_flow)
    elif action.webhook:
        body = {
            "survey": survey.name,
            "contact_id": ctx.conversation.contact_id,
            "conversation_id": ctx.conversation.id,
            "answers": answers,
        }
        ctx.post(action.webhook, body, what="survey.webhook")


async def start_here(ctx: HandlerContext, which: str, return_to: str | None = None) -> bool:
    """Start a flow in this conversation, from a handler (bot payload, end action, away).

    Entry point `chancenter.flows`: handlers call it as `ctx.start_flow(...)`."""
    conversation = ctx.conversation
    async with ctx.db.read() as conn:
        try:
            survey_id, survey = await find_survey(conn, conversation.space_id, which)
        except NotFound:
            log.warning("flow to start does not exist", extra={"survey": which})
            return False
        values, tags_ = await facts(conn, conversation.contact_id)
    messages, waiting = walk(survey, survey.steps[0].id, values, tags_, conversation.language)
    for parts in messages:
        ctx.reply(*parts, by=Author.survey(survey_id))
    if waiting == END:
        return True
    previous = ctx.new_handler or conversation.handler
    back = return_to or (previous if previous in ("waiting", "agent") else "bot")
    ctx.hand_over("flow")
    at = now()

    async def insert(conn: AsyncConnection) -> None:
        # a flow that was running here stops: one flow at a time
        await conn.execute(
            flow_runs.update()
            .where(flow_runs.c.conversation_id == conversation.id)
            .where(flow_runs.c.status.in_(ACTIVE))
            .values(status="stopped", finished_at=at)
        )
        await conn.execute(
            flow_runs.insert().values(
                survey_id=survey_id,
                space_id=conversation.space_id,
                conversation_id=conversation.id,
                contact_id=conversation.contact_id,
                status="sent",
                step=waiting,
                answers={},
                return_to=back,
                created_at=at,
                updated_at=at,
            )
        )

    ctx.write(insert)
    return True
