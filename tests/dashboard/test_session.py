"""Signing in to the dashboard (`dashboard.session`, `bot.workspace.passwords`): the
cookie, wrong passwords, the rate limit, CSRF, other spaces, and where `next` may lead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from bot.errors import NotFound, Unprocessable
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import dashboard_sessions, users
from bot.workspace.passwords import check_password, set_password
from dashboard.session import ATTEMPTS, COOKIE, TRIES
from tests.dashboard.conftest import PASSWORD, csrf_of, person, rows, sign_in, space_url


async def test_a_password_is_stored_as_argon2_and_checked(app: Application) -> None:
    await person(app, "ana@example.com")
    async with app[DB].write() as conn:
        stored = (
            await conn.execute(
                sa.select(users.c.password_hash).where(users.c.email == "ana@example.com")
            )
        ).scalar_one()
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
        assert await check_password(conn, "ANA@example.com ", PASSWORD) is not None
        assert await check_password(conn, "ana@example.com", "wrong password") is None
        assert await check_password(conn, "nobody@example.com", PASSWORD) is None
        with pytest.raises(Unprocessable, match="at least 10"):
            await set_password(conn, "ana@example.com", "short")
        with pytest.raises(NotFound, match="users add"):
            await set_password(conn, "nobody@example.com", PASSWORD)


async def test_signing_in_sets_a_safe_cookie_and_opens_the_inbox(
    client: TestClient, app: Application
) -> None:
    await person(app, "bea@example.com")
    resp = await sign_in(client, "bea@example.com")
    assert resp.status == 303 and resp.headers["Location"] == "/app/"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/app" in cookie
    assert "Secure" not in cookie  # the public URL of the tests is http
    home = await client.get("/app/", allow_redirects=False)
    assert home.headers["Location"] == space_url(app, "inbox")
    inbox = await client.get(space_url(app, "inbox"))
    html = await inbox.text()
    assert inbox.status == 200 and "<title>Inbox" in html and '<main id="main">' in html
    assert "default-src 'self'" in inbox.headers["Content-Security-Policy"]


async def test_wrong_passwords_are_refused_alike_then_limited(
    client: TestClient, app: Application
) -> None:
    await person(app, "bea@example.com")
    wrong = await sign_in(client, "bea@example.com", "not the password")
    nobody = await sign_in(client, "nobody@example.com", "not the password")
    assert wrong.status == nobody.status == 401
    assert "Wrong email or password." in await wrong.text()
    for _ in range(ATTEMPTS):
        await sign_in(client, "bea@example.com", "still wrong")
    limited = await sign_in(client, "bea@example.com")  # right, but too late
    assert limited.status == 429 and "Too many attempts" in await limited.text()
    assert (await client.get(space_url(app, "inbox"), allow_redirects=False)).status == 303


async def test_made_up_forwarded_addresses_do_not_dodge_the_limit(
    client: TestClient, app: Application
) -> None:
    """No trusted proxy is set: X-Forwarded-For is the client's word, not believed."""
    for n in range(ATTEMPTS):
        await sign_in(client, f"x{n}@example.com", "no", forwarded=f"203.0.113.{n}")
    blocked = await sign_in(client, "y@example.com", "no", forwarded="192.0.2.44")
    assert blocked.status == 429  # every try was counted against the peer's own address


async def test_a_form_without_its_csrf_token_changes_nothing(
    client: TestClient, app: Application
) -> None:
    await person(app, "bea@example.com")
    forged = await client.post(
        "/app/login",
        data={"email": "bea@example.com", "password": PASSWORD, "csrf": "forged"},
        allow_redirects=False,
    )
    assert forged.status == 400 and "form expired" in await forged.text()
    assert (await sign_in(client, "bea@example.com")).status == 303
    page = await client.get(space_url(app, "inbox"))
    csrf = csrf_of(await page.text())
    out = await client.post("/app/logout", data={"csrf": "forged"}, allow_redirects=False)
    assert out.status == 303
    assert (await client.get(space_url(app, "inbox"), allow_redirects=False)).status == 200
    out = await client.post("/app/logout", data={"csrf": csrf}, allow_redirects=False)
    assert (await client.get(space_url(app, "inbox"), allow_redirects=False)).status == 303


async def test_only_ones_own_spaces_and_pages_of_the_dashboard(
    client: TestClient, app: Application
) -> None:
    await person(app, "bea@example.com")
    page = await client.get("/app/login?next=https://evil.example.com/")
    assert 'name="next" value="/app/"' in await page.text()
    await sign_in(client, "bea@example.com")
    other = await client.get(f"/app/{app[DEFAULT_SPACE] + 1}/inbox")
    assert other.status == 404
    stranger = await client.get("/app/abc/inbox")
    assert stranger.status == 404


async def test_tries_sent_at_once_are_counted_and_odd_ids_are_404(
    client: TestClient, app: Application
) -> None:
    await person(app, "bea@example.com")
    answers = await asyncio.gather(
        *(sign_in(client, "bea@example.com", "wrong password") for _ in range(3 * ATTEMPTS))
    )
    codes = [a.status for a in answers]
    assert codes.count(401) == ATTEMPTS and codes.count(429) == 2 * ATTEMPTS
    await person(app, "ana@example.com", name="Ana")
    client.session.cookie_jar.clear()
    app[TRIES]._seen.clear()  # another address, in effect: the test client has only one
    assert (await sign_in(client, "ana@example.com")).status == 303
    assert (await client.get("/app/²/inbox")).status == 404  # a digit, but not a number
    assert (await client.get(space_url(app, "inbox/list?team=²"))).status == 200


async def test_signing_in_comes_back_to_the_page_asked_for_with_its_query(
    client: TestClient, app: Application
) -> None:
    await person(app, "bea@example.com")
    asked = space_url(app, "inbox?status=closed&handler=bot")
    away = await client.get(asked, allow_redirects=False)
    login = await client.get(away.headers["Location"])
    assert 'value="/app/1/inbox?status=closed&amp;handler=bot"' in await login.text()


async def test_a_new_password_ends_the_sessions_of_the_old_one(
    client: TestClient, app: Application
) -> None:
    await person(app, "bea@example.com")
    await sign_in(client, "bea@example.com")
    assert (await client.get(space_url(app, "inbox"), allow_redirects=False)).status == 200
    async with app[DB].write() as conn:
        await set_password(conn, "bea@example.com", "another long password")
    assert (await client.get(space_url(app, "inbox"), allow_redirects=False)).status == 303


async def test_signing_out_ends_the_session_even_where_its_cookie_was_copied(
    client: TestClient, app: Application, browsers: Callable[[], TestClient]
) -> None:
    await person(app, "bea@example.com")
    await sign_in(client, "bea@example.com")
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/app/"))[COOKIE]
    thief = browsers()  # replays the cookie from another program
    stolen = {"Cookie": f"{COOKIE}={cookie.value}"}
    inbox = space_url(app, "inbox")
    assert (await thief.get(inbox, headers=stolen, allow_redirects=False)).status == 200
    page = await client.get(inbox)
    out = await client.post(
        "/app/logout", data={"csrf": csrf_of(await page.text())}, allow_redirects=False
    )
    assert out.status == 303
    assert (await thief.get(inbox, headers=stolen, allow_redirects=False)).status == 303
    assert await rows(app, sa.select(dashboard_sessions)) == []


async def test_signing_out_everywhere_ends_every_session_of_that_person_only(
    app: Application, browsers: Callable[[], TestClient]
) -> None:
    await person(app, "bea@example.com")
    await person(app, "ana@example.com", name="Ana")
    inbox = space_url(app, "inbox")
    laptop, phone, ana = browsers(), browsers(), browsers()
    for browser, email in ((laptop, "bea"), (phone, "bea"), (ana, "ana")):
        assert (await sign_in(browser, f"{email}@example.com")).status == 303
    kept = await rows(app, sa.select(dashboard_sessions.c.address, dashboard_sessions.c.agent))
    assert len(kept) == 3 and all(address and agent for address, agent in kept)
    page = await laptop.get(inbox)
    assert "Sign out everywhere" in await page.text()
    await laptop.post(
        "/app/logout",
        data={"csrf": csrf_of(await page.text()), "everywhere": "1"},
        allow_redirects=False,
    )
    assert (await phone.get(inbox, allow_redirects=False)).status == 303
    assert (await laptop.get(inbox, allow_redirects=False)).status == 303
    assert (await ana.get(inbox, allow_redirects=False)).status == 200
