"""Who is looking: sign-in with an email and a password, an encrypted cookie session, a
CSRF token on every change, and each page's space checked against the viewer's.

The cookie (aiohttp-session's `EncryptedCookieStorage`, Fernet under a key derived from
the hub's secret key) is `HttpOnly`, `SameSite=Lax`, and `Secure` when the public URL is
https. It carries a token whose hash names a row of `dashboard_sessions`: signing out
deletes the row, so a copied cookie dies with it, "everywhere" deletes all of the
person's rows, and so does a new password. Sign-ins are limited per address and per
email, so a password cannot be guessed at speed; a wrong email and a wrong password
read the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web
from aiohttp_session import get_session, new_session
from aiohttp_session import setup as setup_sessions
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.api.auth import ceiling
from bot.clock import now
from bot.errors import Forbidden, NotFound
from bot.keys import DB, SETTINGS
from bot.storage.tables import (
    dashboard_sessions,
    organization_members,
    space_members,
    spaces,
    users,
)
from bot.workspace.passwords import check_password

COOKIE = "chancenter_session"
HOURS = 12
ATTEMPTS, WINDOW = 5, 300.0  # sign-in tries per address, and per email, in five minutes
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Membership:
    space_id: int
    name: str
    role: str  # agent | manager | admin


@dataclass(frozen=True)
class Viewer:
    user_id: int
    name: str
    spaces: tuple[Membership, ...]
    csrf: str

    def membership(self, space_id: int) -> Membership:
        for member in self.spaces:
            if member.space_id == space_id:
                return member
        raise NotFound(f"no space {space_id} of yours")


VIEWER = web.RequestKey("dashboard_viewer", Viewer)
SPACE = web.RequestKey("dashboard_space", Membership)
TRIES = web.AppKey("dashboard_tries", "Tries")


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    key = hashlib.sha256(b"chancenter dashboard session\0" + settings.signing_key()).digest()
    storage = EncryptedCookieStorage(
        key,  # 32 bytes: it encodes them for Fernet
        cookie_name=COOKIE,
        max_age=HOURS * 3600,
        path="/app",
        httponly=True,
        samesite="Lax",
        secure=str(settings.public_url).startswith("https://"),
    )
    setup_sessions(app, storage)
    app[TRIES] = Tries()
    app.router.add_get("/app/login", login_page)
    app.router.add_post("/app/login", login)
    app.router.add_post("/app/logout", logout)


class Tries:
    """Sign-in tries by address and by email within the window, a right password not held
    against either (a bounded memory)."""

    def __init__(self, keep: int = 10_000) -> None:
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._keep = keep
        # argon2 takes 64 MiB and a core a check: a flood of sign-ins waits its turn
        self.checking = asyncio.Semaphore(4)

    def blocked(self, *keys: str) -> float:
        """Seconds until another try is allowed (0: now)."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            times = self._seen.get(key)
            while times and now - times[0] > WINDOW:
                times.popleft()
            if times and len(times) >= ATTEMPTS:
                wait = max(wait, WINDOW - (now - times[0]))
        return wait

    def succeeded(self, *keys: str) -> None:
        """A right password: its try is not held against the address or the email."""
        for key in keys:
            if times := self._seen.get(key):
                times.pop()

    def tried(self, *keys: str) -> None:
        for key in keys:
            self._seen.setdefault(key, deque()).append(time.monotonic())
            self._seen.move_to_end(key)
        while len(self._seen) > self._keep:
            self._seen.popitem(last=False)


@aiohttp_jinja2.template("login.html")
async def login_page(request: web.Request) -> dict[str, Any]:
    session = await get_session(request)
    session.setdefault("login_csrf", secrets.token_urlsafe(32))
    return {"csrf": session["login_csrf"], "next": _next(request.query.get("next")), "error": None}


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    session = await get_session(request)
    email = str(form.get("email", "")).strip().lower()[:320]
    password = str(form.get("password", ""))
    target = _next(str(form.get("next", "")))
    expected = session.get("login_csrf", "")
    if not expected or not hmac.compare_digest(str(form.get("csrf", "")), expected):
        return _login_error(request, session, target, "The form expired: please sign in again.")
    tries = request.app[TRIES]
    address = client_address(request)
    keys = (f"ip:{address}", f"email:{email}")
    wait = tries.blocked(*keys)
    if wait:
        minutes = int(wait // 60) + 1
        message = f"Too many attempts: try again in {minutes} minute{'s' * (minutes > 1)}."
        return _login_error(request, session, target, message, status=429)
    tries.tried(*keys)  # counted before the check: tries sent at once are counted too
    async with tries.checking, request.app[DB].read() as conn:
        user_id = await check_password(conn, email, password)
    if user_id is None:
        return _login_error(request, session, target, "Wrong email or password.", status=401)
    tries.succeeded(*keys)
    token, at = secrets.token_urlsafe(32), now()
    async with request.app[DB].write() as conn:
        await conn.execute(
            dashboard_sessions.delete().where(
                dashboard_sessions.c.user_id == user_id, dashboard_sessions.c.expires_at <= at
            )
        )
        await conn.execute(
            dashboard_sessions.insert().values(
                id=_hashed(token),
                user_id=user_id,
                created_at=at,
                expires_at=at + timedelta(hours=HOURS),
                address=address[:64],
                agent=request.headers.get("User-Agent", "")[:200],
            )
        )
    fresh = await new_session(request)  # a new session id: nothing from before carries over
    fresh["token"] = token
    fresh["csrf"] = secrets.token_urlsafe(32)
    raise web.HTTPSeeOther(target)


def client_address(request: web.Request) -> str:
    """Who is signing in: the peer, or behind a trusted proxy the nearest address in
    X-Forwarded-For that is not a proxy's (the ones before it, the client may have made
    up). Without `CHANCENTER_TRUSTED_PROXIES` every try behind a proxy is the proxy's."""
    trusted = request.app[SETTINGS].trusted_proxies
    peer = request.remote or ""
    if not _among(peer, trusted):
        return peer
    hops = ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
    hops = [hop.strip() for hop in hops if hop.strip()]
    return next((hop for hop in reversed(hops) if not _among(hop, trusted)), peer)


def _among(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(found in network for network in networks)


def _login_error(
    request: web.Request, session: Any, target: str, error: str, status: int = 400
) -> web.Response:
    session["login_csrf"] = secrets.token_urlsafe(32)
    context = {"csrf": session["login_csrf"], "next": target, "error": error}
    return aiohttp_jinja2.render_template("login.html", request, context, status=status)


async def logout(request: web.Request) -> web.StreamResponse:
    """End this session, or with `everywhere` every session of its person."""
    session = await get_session(request)
    form = await request.post()
    if _csrf_ok(request, session, form.get("csrf")):
        ended = dashboard_sessions.c.id == _hashed(str(session.get("token", "")))
        async with request.app[DB].write() as conn:
            if form.get("everywhere"):
                mine = sa.select(dashboard_sessions.c.user_id).where(ended).scalar_subquery()
                ended = dashboard_sessions.c.user_id == mine
            await conn.execute(dashboard_sessions.delete().where(ended))
        session.invalidate()
    raise web.HTTPSeeOther("/app/login")


def _hashed(token: str) -> str:
    """A session's row id: the database never holds what the cookie carries."""
    return hashlib.sha256(token.encode()).hexdigest()


def _next(target: str | None) -> str:
    """Only a page of the dashboard: never another site (an open redirect)."""
    if target and target.startswith("/app/") and not target.startswith("/app//"):
        return target
    return "/app/"


def _csrf_ok(request: web.Request, session: Any, given: Any) -> bool:
    given = given or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf", "")
    return bool(expected) and hmac.compare_digest(str(given), expected)


async def viewer_of(request: web.Request) -> Viewer | None:
    session = await get_session(request)
    token = session.get("token")
    if not isinstance(token, str):
        return None
    s = dashboard_sessions.c
    async with request.app[DB].read() as conn:
        user = (
            await conn.execute(
                sa.select(users.c.id, users.c.name)
                .join(dashboard_sessions, s.user_id == users.c.id)
                .where(s.id == _hashed(token), s.expires_at > now())
            )
        ).first()
        if user is None:  # signed out, here or everywhere, or a new password
            return None
        user_id, name = user.id, user.name
        rows = await conn.execute(
            sa.select(
                spaces.c.id,
                spaces.c.name,
                space_members.c.role,
                organization_members.c.role.label("org_role"),
            )
            .join(space_members, space_members.c.space_id == spaces.c.id)
            .outerjoin(
                organization_members,
                sa.and_(
                    organization_members.c.organization_id == spaces.c.organization_id,
                    organization_members.c.user_id == user_id,
                ),
            )
            .where(space_members.c.user_id == user_id)
            .order_by(spaces.c.id)
        )
        memberships = tuple(
            Membership(r.id, r.name, ceiling(r.role, r.org_role, billing=False) or r.role)
            for r in rows
        )
    return Viewer(user_id, name, memberships, session["csrf"])


def page(role: str = "agent") -> Callable[[Handler], Handler]:
    """A dashboard handler of `/app/{space}/...`: signed in (else to the sign-in page),
    the space theirs (else 404), the role enough (else 403), and a change (not GET)
    carrying the session's CSRF token (else 403)."""

    def wrap(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            viewer = await viewer_of(request)
            if viewer is None:
                if request.method == "GET" and "HX-Request" not in request.headers:
                    raise web.HTTPSeeOther("/app/login?" + urlencode({"next": request.path_qs}))
                raise web.HTTPUnauthorized(text="sign in again: /app/login")
            space = viewer.membership(_space_id(request))
            if role != "agent" and RANK[space.role] < RANK[role]:
                raise Forbidden(f"this page is for the space's {role}s")
            if request.method != "GET":
                given = None  # JSON and uploads carry it in the X-CSRF-Token header
                if request.content_type == "application/x-www-form-urlencoded":
                    given = (await request.post()).get("csrf")
                if not _csrf_ok(request, await get_session(request), given):
                    raise Forbidden("the form expired: reload the page")
            request[VIEWER] = viewer
            request[SPACE] = space
            return await handler(request)

        return checked

    return wrap


RANK = {"agent": 1, "manager": 2, "admin": 3}


def _space_id(request: web.Request) -> int:
    found = number(request.match_info.get("space", ""))
    if found is None:
        raise NotFound("no such space")
    return found


def number(raw: str) -> int | None:
    """An id written in the URL: ASCII digits that fit a BIGINT ("²" is a digit too)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None
