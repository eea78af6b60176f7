"""The CLI's argument types, shared flag sets and the declaration of a command (`Call`):
light, so `--help` stays instant."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Arg = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """One command as one REST call: its flags become the body (or the query of a GET)."""

    method: str
    path: str  # `{name}` segments come from the positional argument of that name
    help: str
    args: tuple[Arg, ...] = ()
    query: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # the argument that is the whole request body
    people: str = "/users"  # where an email given for a USER resolves to an id
    # builds the body from the flags, when flat flags make a nested request
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    csv: bool = False  # `--csv`: GET `path + ".csv"` to standard output
    watch: bool = False  # `--watch`: follow the answer with a progress bar (`bot.cli.watch`)


ID = {"type": int}
ORG_ROLES = {"choices": ["admin", "billing_admin", "member"]}
SPACE_ROLES = {"choices": ["manager", "agent"]}
# settings `spaces set --clear` removes (the API takes null for each)
CLEARABLE = [
    "business_hours",
    "away_text",
    "away_every_minutes",
    "handover_text",
    "handover_keywords",
    "away_flow",
    "csat_survey",
    "csat_bot_conversations",
    "release_on_close",
    "assign_outside_hours",
]


def _yes_no(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError("say true or false")
    return text == "true"


YES_NO = {"type": _yes_no, "metavar": "true|false"}


def user_ref(text: str) -> int | str:
    """A user as people name them: an email, or the id `users list` shows."""
    if text.isdigit():
        return int(text)
    if "@" in text.strip("@"):
        return text.strip()
    raise argparse.ArgumentTypeError(f"{text!r}: give an email or a numeric id")


USER = {"type": user_ref, "metavar": "USER", "help": "an email or an id"}


def _json_file(path: str) -> Any:
    """A JSON (or YAML, its superset in practice) file's content."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc}") from None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


CHANNEL_FLAGS = {
    "--token": "telegram: the bot token from @BotFather",
    "--page-id": "messenger: the Facebook page id",
    "--page-token": "messenger: the page access token",
    "--phone-number-id": "whatsapp: the phone number id",
    "--access-token": "whatsapp: a system-user access token",
    "--app-secret": "messenger/whatsapp: the Meta app secret (signs webhooks)",
    "--verify-token": "messenger/whatsapp: any string; Meta echoes it when checking the URL",
    "--app-id": "botframework: the Azure Bot's Microsoft app id",
    "--app-password": "botframework: the app's client secret (its password)",
    "--tenant-id": "botframework: the tenant of a single-tenant app (omit for multi-tenant)",
}
