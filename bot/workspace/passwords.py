"""Users' dashboard passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's second
recommended parameters), checked in a thread so a login never holds the event loop.

A login for an email nobody has still costs one hash, so response times do not tell
which emails have accounts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import NotFound, Unprocessable
from bot.storage.tables import dashboard_sessions, users

HASHER = PasswordHasher()
SHORTEST = 10
_NOBODY = HASHER.hash("a password no account has")  # what an unknown email is checked against


async def set_password(conn: AsyncConnection, email: str, password: str) -> int:
    """Hash and store `password` for the user with `email`; their id."""
    if len(password) < SHORTEST:
        raise Unprocessable(f"a password has at least {SHORTEST} characters")
    hashed = await asyncio.to_thread(HASHER.hash, password)
    user_id = (
        await conn.execute(
            users.update()
            .where(_email_is(email))
            .values(password_hash=hashed)
            .returning(users.c.id)
        )
    ).scalar()
    if user_id is None:
        raise NotFound(f"no user {email!r}: `chancenter users add {email} --name NAME` adds them")
    await _end_sessions(conn, user_id)  # the old password may have been stolen
    return int(user_id)


async def sign_out(conn: AsyncConnection, email: str) -> int:
    """End every dashboard session of the user with `email` (a lost laptop); how many."""
    user_id = (await conn.execute(sa.select(users.c.id).where(_email_is(email)))).scalar()
    if user_id is None:
        raise NotFound(f"no user {email!r}: `chancenter users list` shows who there is")
    return await _end_sessions(conn, user_id)


async def _end_sessions(conn: AsyncConnection, user_id: int) -> int:
    ended = await conn.execute(
        dashboard_sessions.delete().where(dashboard_sessions.c.user_id == user_id)
    )
    return int(ended.rowcount or 0)


def _email_is(email: str) -> Any:
    """Emails match whatever their case (the form, the CLI and the invitation differ)."""
    return sa.func.lower(users.c.email) == email.strip().lower()


async def check_password(conn: AsyncConnection, email: str, password: str) -> int | None:
    """The user's id when `password` is theirs, else None (whatever was wrong)."""
    row = (
        await conn.execute(sa.select(users.c.id, users.c.password_hash).where(_email_is(email)))
    ).first()
    hashed = row.password_hash if row is not None and row.password_hash else _NOBODY
    try:
        await asyncio.to_thread(HASHER.verify, hashed, password)
    except (VerificationError, InvalidHashError):
        return None
    return int(row.id) if row is not None and row.password_hash else None
