"""Who may do what through the API: a token carries one role in one space."""

from __future__ import annotations

from aiohttp import web

from bot.auth import PRINCIPAL
from bot.errors import Forbidden

# admin: the organization's admin; manager: changes the space's settings;
# agent: works conversations and contacts.
RANK = {"billing": 0, "agent": 1, "manager": 2, "admin": 3}


def require(request: web.Request, role: str) -> None:
    have = request[PRINCIPAL].role
    if RANK.get(have, 0) < RANK[role]:
        raise Forbidden(f"this needs a {role} token or higher; yours is {have}")
