"""Survey files: YAML or JSON, and errors that name the step and the field."""

from __future__ import annotations

import pytest

from bot.errors import InvalidPayload
from surveys.definition import parse_survey, text_in

GOOD = """
name: onboarding
language: en
steps:
  - id: hello
    type: message
    text: {en: "Two quick questions.", pt: "Duas perguntas rápidas."}
  - id: plan
    type: question
    text: Which plan?
    answer: choice
    options: [free, pro]
    next:
      - if: {all: [{field: answers.plan, op: is, value: pro}]}
        goto: seats
      - goto: end
  - id: seats
    type: question
    text: How many seats?
    answer: number
    min: 1
on_complete:
  - tag: onboarded
"""


def test_a_yaml_survey_reads_whole() -> None:
    survey = parse_survey(GOOD)
    assert [s.id for s in survey.steps] == ["hello", "plan", "seats"]
    assert survey.after("hello") == "plan" and survey.after("seats") == "end"
    assert survey.on_complete[0].tag == "onboarded"
    assert text_in(survey.steps[0].text, "pt-BR", "en") == "Duas perguntas rápidas."
    assert text_in(survey.steps[0].text, "de", "en") == "Two quick questions."


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("answer: number", "answer: colour"), "step 'seats' (steps.2), answer: Input should be"),
        (
            ("    options: [free, pro]\n", ""),
            "step 'plan' (steps.1), step: a choice question needs",
        ),
        (("goto: seats", "goto: sets"), "step 'plan' goes to 'sets', which is no step"),
        (("id: seats", "id: plan"), "step ids repeat: ['plan']"),
        (("field: answers.plan", "field: answer.plan"), "unknown field 'answer.plan'"),
        (("  - tag: onboarded", "  - tag: onboarded\n    untag: new"), "exactly one of tag"),
        (("name: onboarding", "name: ''"), "name: String should have at least 1 character"),
    ],
)
def test_mistakes_are_named(change: tuple[str, str], says: str) -> None:
    with pytest.raises(InvalidPayload) as error:
        parse_survey(GOOD.replace(*change))
    assert says in str(error.value)


def test_not_a_mapping_or_not_yaml() -> None:
    with pytest.raises(InvalidPayload, match="mapping with name and steps"):
        parse_survey("- just\n- a list")
    with pytest.raises(InvalidPayload, match="not YAML or JSON"):
        parse_survey("name: [unclosed")
