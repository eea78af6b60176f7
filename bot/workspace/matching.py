"""Matching what a person typed against what we expect, one way for everyone: the
built-in bot's training phrases (`integrations.builtin_bot.matcher`) and a survey's
options and yes/no words (`surveys.answers`)."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^\w]+")


def normalize(text: str) -> str:
    """Casefold, drop accents and punctuation: "¿Qué HORARIO?" -> "que horario"."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()
