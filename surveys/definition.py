"""A survey (flow) as written in YAML or JSON, validated with errors naming step and field.

name: onboarding
language: en
steps:
  - id: plan
    type: question
    text: {en: "Which plan are you on?", es: "¿Qué plan tienes?"}
    answer: choice
    options: [free, pro]
    save_to: plan
    next:
      - if: {all: [{field: answers.plan, op: is, value: pro}]}
        goto: seats
      - goto: end
  - id: seats
    type: question
    text: How many seats?
    answer: number
    min: 1
    save_to: seats
on_complete:
  - tag: onboarded
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from bot.errors import InvalidPayload
from bot.model import Frozen
from bot.pipeline.untrusted import load_yaml, plain
from bot.workspace.filters import Group

ID = r"^[a-z][a-z0-9_]{0,63}$"
END = "end"
Text = str | dict[str, str]  # one text, or one per language
AnswerType = Literal[
    "text", "number", "email", "phone", "date", "choice", "rating", "yes_no", "location", "file"
]
STOP_WORDS = {
    "en": ["stop", "cancel", "quit"],
    "es": ["parar", "cancelar", "salir"],
    "pt": ["parar", "cancelar", "sair"],
}


class Branch(Frozen):
    """Go to `goto` when `if` holds (no `if`: always); `end` finishes the flow."""

    when: Group | None = Field(None, alias="if")
    goto: str


Next = str | list[Branch] | None


class MessageStep(Frozen):
    type: Literal["message"]
    id: str = Field(pattern=ID)
    text: Text | None = None
    media_url: str | None = Field(None, pattern=r"^https?://")
    next: Next = None


class QuestionStep(Frozen):
    type: Literal["question"]
    id: str = Field(pattern=ID)
    text: Text
    answer: AnswerType
    options: list[str] = Field(default_factory=list, max_length=50)
    multiple: bool = False
    min: float | None = None
    max: float | None = None
    save_to: str | None = Field(None, pattern=ID, description="a custom field key")
    retry_text: Text | None = None
    max_retries: int = Field(2, ge=0, le=10)
    on_give_up: Literal["skip", "end"] = "skip"
    next: Next = None

    @model_validator(mode="after")
    def _options(self) -> QuestionStep:
        if self.answer == "choice" and not self.options:
            raise ValueError("a choice question needs its options")
        if self.answer != "choice" and (self.options or self.multiple):
            raise ValueError("options and multiple are for choice questions")
        return self


Step = Annotated[MessageStep | QuestionStep, Field(discriminator="type")]


class Action(Frozen):
    """One end action; exactly one key is set."""

    tag: str | None = None
    untag: str | None = None
    set_field: dict[str, Any] | None = None
    handover: bool | dict[str, str] | None = None  # true, or {"team": ..., "note": ...}
    start_flow: str | None = None
    webhook: str | None = Field(None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _one(self) -> Action:
        if len(self.model_dump(exclude_none=True)) != 1:
            raise ValueError(
                "an action is exactly one of tag, untag, set_field, handover, start_flow, webhook"
            )
        return self


class Survey(Frozen):
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    language: str = Field("en", description="the language of plain texts, and the fallback")
    steps: list[Step] = Field(min_length=1, max_length=200)
    on_complete: list[Action] = Field(default_factory=list)
    completed_text: Text | None = None
    stopped_text: Text = {
        "en": "OK, I stopped.",
        "es": "De acuerdo, paro aquí.",
        "pt": "Ok, parei.",
    }
    stop_words: dict[str, list[str]] = Field(default_factory=lambda: dict(STOP_WORDS))
    expire_after_hours: float = Field(24, gt=0, le=24 * 30)
    remind_after_hours: float | None = Field(None, gt=0)
    reminder_text: Text = {
        "en": "Still there? Just answer the last question when you can.",
        "es": "¿Sigues ahí? Responde la última pregunta cuando puedas.",
        "pt": "Ainda aí? Responda a última pergunta quando puder.",
    }

    @model_validator(mode="after")
    def _targets(self) -> Survey:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError(f"step ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        for step in self.steps:
            for target in targets(step.next):
                if target != END and target not in ids:
                    raise ValueError(f"step {step.id!r} goes to {target!r}, which is no step")
        return self

    def step(self, step_id: str) -> MessageStep | QuestionStep:
        return next(s for s in self.steps if s.id == step_id)

    def after(self, step_id: str) -> str:
        """The step written after `step_id` (or the end)."""
        ids = [s.id for s in self.steps]
        at = ids.index(step_id)
        return ids[at + 1] if at + 1 < len(ids) else END


def targets(next_: Next) -> list[str]:
    if next_ is None:
        return []
    if isinstance(next_, str):
        return [next_]
    return [b.goto for b in next_]


def text_in(text: Text | None, language: str | None, default: str) -> str | None:
    """The text in the contact's language, else the survey's, else any."""
    if text is None or isinstance(text, str):
        return text
    for lang in ((language or "").split("-")[0], default):
        if lang in text:
            return text[lang]
    return next(iter(text.values()), None)


def parse_survey(source: str | bytes | dict[str, Any]) -> Survey:
    """YAML or JSON text (or already parsed) to a `Survey`, or one clear error."""
    data: Any = source
    if isinstance(source, bytes):
        source = source.decode("utf-8", "replace")
    if isinstance(source, str):
        data = plain(load_yaml(source, "the survey"))
    if not isinstance(data, dict):
        raise InvalidPayload("a survey is a mapping with name and steps")
    try:
        return Survey.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(_where(exc, data)) from None


def _where(exc: ValidationError, data: dict[str, Any]) -> str:
    """`step 'plan' (steps.2), answer: Input should be ...`: name the step, not just its index."""
    # in a union (a `next` is a step id or branches) the deepest error is the real one
    err = max(exc.errors(), key=lambda e: len(e["loc"]))
    loc = [str(p) for p in err["loc"] if not _union_tag(str(p))]
    where = ".".join(loc) or "survey"
    if len(loc) >= 2 and loc[0] == "steps" and loc[1].isdigit():
        steps = data.get("steps") or []
        index = int(loc[1])
        step = steps[index] if isinstance(steps, list) and index < len(steps) else None
        step_id = step.get("id") if isinstance(step, dict) else None
        rest = loc[2:]
        field = ".".join(rest) or "step"
        where = f"step {step_id!r} (steps.{index}), {field}"
    message = re.sub(r"^Value error, ", "", err["msg"])
    return f"{where}: {message}"


def _union_tag(part: str) -> bool:
    """Pydantic names the union member it tried (`str`, `list[Branch]`, `Condition`, ...)."""
    return part in ("str", "question", "message", "bool") or part[:1].isupper() or "[" in part


def dump(survey: Survey) -> dict[str, Any]:
    return json.loads(survey.model_dump_json(by_alias=True, exclude_none=True))
