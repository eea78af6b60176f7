"""Reading a contact's message as the answer to a question, or saying why it is not one."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import phonenumbers
from rapidfuzz import fuzz, process

from bot.model import (
    Inbound,
    LocationPart,
    MediaPart,
    MessageReceived,
    Postback,
    text_of,
)
from bot.workspace.matching import normalize
from surveys.definition import QuestionStep

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
YES = {"yes", "y", "yeah", "yep", "sure", "ok", "si", "sí", "sim", "s", "true", "1", "👍"}
NO = {"no", "n", "nope", "nah", "não", "nao", "false", "0", "👎"}
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y")
SEPARATORS = re.compile(r",|;|\band\b|\be\b|\by\b")  # "a, b and c" (also pt/es)
CLOSE_ENOUGH = 80  # rapidfuzz score for a misspelt option


class NotAnAnswer(ValueError):
    """The message does not answer the question; the text says what would."""


def read_answer(question: QuestionStep, event: Inbound, default_region: str | None = None) -> Any:
    """The answer as stored (str, float, bool, list of options), or `NotAnAnswer`."""
    kind = question.answer
    if kind == "location":
        point = _part(event, LocationPart)
        if point is None:
            raise NotAnAnswer("please share a location")
        return f"{point.latitude},{point.longitude}"
    if kind == "file":
        media = _part(event, MediaPart)
        if media is None:
            raise NotAnAnswer("please send a file or a photo")
        return media.url or f"media:{media.media_id}"
    text = (event.payload if isinstance(event, Postback) else _text(event)).strip()
    if not text:
        raise NotAnAnswer("please answer with a message")
    reader = READERS[kind]
    return reader(question, text, default_region)


def _text(event: Inbound) -> str:
    return text_of(event.parts) if isinstance(event, MessageReceived) else ""


def _part(event: Inbound, kind: type[Any]) -> Any:
    if isinstance(event, MessageReceived):
        return next((p for p in event.parts if isinstance(p, kind)), None)
    return None


def _text_answer(q: QuestionStep, text: str, _: str | None) -> str:
    return text[:500]


def _number(q: QuestionStep, text: str, _: str | None) -> float:
    try:
        value = float(text.replace(",", ".").replace(" ", ""))
    except ValueError:
        raise NotAnAnswer("please answer with a number") from None
    too_low = q.min is not None and value < q.min
    if too_low or (q.max is not None and value > q.max):
        low = "" if q.min is None else f"{q.min:g}"
        high = "" if q.max is None else f"{q.max:g}"
        raise NotAnAnswer(f"please answer with a number from {low or '...'} to {high or '...'}")
    return value


def _email(q: QuestionStep, text: str, _: str | None) -> str:
    if not EMAIL.match(text):
        raise NotAnAnswer("that does not look like an email address (name@example.com)")
    return text.lower()


def _phone(q: QuestionStep, text: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise NotAnAnswer("please send a phone number with its country code, like +351 912 345 678")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _date(q: QuestionStep, text: str, _: str | None) -> str:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise NotAnAnswer(f"please answer with a date, like {date.today():%d/%m/%Y}")


def _choice(q: QuestionStep, text: str, _: str | None) -> str | list[str]:
    words = [w.strip() for w in SEPARATORS.split(text)] if q.multiple else [text]
    chosen = [_option(q.options, w) for w in words if w]
    if not q.multiple:
        return chosen[0]
    return list(dict.fromkeys(chosen))


def _option(options: list[str], text: str) -> str:
    """By its number ("2"), its payload or words, or a close spelling."""
    if text.isdigit() and 1 <= int(text) <= len(options):
        return options[int(text) - 1]
    by_key = {normalize(o): o for o in options}
    if normalize(text) in by_key:
        return by_key[normalize(text)]
    match = process.extractOne(normalize(text), list(by_key), scorer=fuzz.WRatio)
    if match is not None and match[1] >= CLOSE_ENOUGH:
        return by_key[match[0]]
    listed = ", ".join(f"{n}. {o}" for n, o in enumerate(options, 1))
    raise NotAnAnswer(f"please choose one of: {listed}")


def _rating(q: QuestionStep, text: str, _: str | None) -> float:
    stars = text.count("⭐") or text.count("*")
    value = stars if stars and not text.strip("⭐* ") else None
    if value is None and text.isdigit():
        value = int(text)
    if value is None or not 1 <= value <= 5:
        raise NotAnAnswer("please rate from 1 to 5")
    return float(value)


def _yes_no(q: QuestionStep, text: str, _: str | None) -> bool:
    word = normalize(text).strip("!.")
    if word in {normalize(y) for y in YES}:
        return True
    if word in {normalize(n) for n in NO}:
        return False
    raise NotAnAnswer("please answer yes or no")


READERS = {
    "text": _text_answer,
    "number": _number,
    "email": _email,
    "phone": _phone,
    "date": _date,
    "choice": _choice,
    "rating": _rating,
    "yes_no": _yes_no,
}
