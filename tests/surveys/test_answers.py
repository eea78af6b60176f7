"""Every answer type, with what it accepts and what it says when it does not; options and
yes/no words are compared as `bot.workspace.matching` normalizes them (the built-in bot's
way too)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.model import LocationPart, MediaPart, MessageReceived, Postback, Sender, TextPart
from surveys.answers import NotAnAnswer, read_answer
from surveys.definition import QuestionStep

WHO = Sender(external_id="u")


def ask(answer: str, **extra: Any) -> QuestionStep:
    return QuestionStep(type="question", id="q", text="?", answer=answer, **extra)


def said(text: str) -> MessageReceived:
    return MessageReceived(external_id="m", sender=WHO, parts=(TextPart(text=text),))


@pytest.mark.parametrize(
    ("question", "text", "value"),
    [
        (ask("text"), " hello ", "hello"),
        (ask("number", min=1, max=10), "2,5", 2.5),
        (ask("email"), "Ana@Example.com", "ana@example.com"),
        (ask("phone"), "+351 912 345 678", "+351912345678"),
        (ask("date"), "31/12/2026", "2026-12-31"),
        (ask("date"), "2026-01-02", "2026-01-02"),
        (ask("choice", options=["Free", "Pro plan"]), "2", "Pro plan"),
        (ask("choice", options=["Free", "Pro plan"]), "pro plna", "Pro plan"),  # close spelling
        (ask("choice", options=["Café", "Té"]), "¡CAFE!", "Café"),  # case, accents, punctuation
        (
            ask("choice", options=["Red", "Green", "Blue"], multiple=True),
            "red and blue",
            ["Red", "Blue"],
        ),
        (ask("rating"), "4", 4.0),
        (ask("rating"), "⭐⭐⭐", 3.0),
        (ask("yes_no"), "Sim", True),
        (ask("yes_no"), "no!", False),
    ],
)
def test_valid_answers(question: QuestionStep, text: str, value: Any) -> None:
    assert read_answer(question, said(text)) == value


@pytest.mark.parametrize(
    ("question", "text", "says"),
    [
        (ask("number", min=1, max=10), "eleven", "a number"),
        (ask("number", min=1, max=10), "11", "from 1 to 10"),
        (ask("email"), "ana at example", "email address"),
        (ask("phone"), "12", "country code"),
        (ask("date"), "next tuesday", "a date"),
        (ask("choice", options=["Free", "Pro"]), "enterprise", "1. Free, 2. Pro"),
        (ask("rating"), "9", "1 to 5"),
        (ask("yes_no"), "maybe", "yes or no"),
        (ask("location"), "Lisbon", "share a location"),
        (ask("file"), "here", "send a file"),
    ],
)
def test_invalid_answers_say_what_would_do(question: QuestionStep, text: str, says: str) -> None:
    with pytest.raises(NotAnAnswer, match=says):
        read_answer(question, said(text))


def test_phone_without_a_country_code_uses_the_contacts_region() -> None:
    assert read_answer(ask("phone"), said("912 345 678"), "PT") == "+351912345678"


def test_buttons_location_and_files() -> None:
    tapped = Postback(external_id="p", sender=WHO, payload="Pro", title="Pro")
    assert read_answer(ask("choice", options=["Free", "Pro"]), tapped) == "Pro"
    here = MessageReceived(
        external_id="m", sender=WHO, parts=(LocationPart(latitude=38.7, longitude=-9.1),)
    )
    assert read_answer(ask("location"), here) == "38.7,-9.1"
    photo = MessageReceived(
        external_id="m", sender=WHO, parts=(MediaPart(type="image", media_id="F1"),)
    )
    assert read_answer(ask("file"), photo) == "media:F1"
