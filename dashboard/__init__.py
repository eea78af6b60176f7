"""The dashboard: the space's web app at `/app/`, served by the hub itself, server-rendered
(aiohttp-jinja2, every value escaped) with htmx for the live parts, vendored and pinned in
`static/` (no build step, no CDN).

Entry point `chancenter.extensions:dashboard`. Pages: `/app/login`, then per space
`/app/{space}/inbox` and `/app/{space}/conversations/{id}`.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

HERE = Path(__file__).parent
# what a dashboard page may load and do: its own scripts and styles only
SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; "
    "media-src 'self' https:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def setup(app: web.Application) -> None:
    from dashboard import bridge, contacts, conversation, inbox, reports, session, settings

    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        filters={"duration": duration},
    )
    session.setup(app)
    app.router.add_get("/app", home)
    app.router.add_get("/app/", home)
    inbox.setup(app)
    conversation.setup(app)
    reports.setup(app)
    contacts.setup(app)
    settings.setup(app)
    bridge.setup(app)
    app.router.add_static("/app/static/", HERE / "static", append_version=False)
    app.on_response_prepare.append(_secure)


def duration(seconds: float | None) -> str:
    """12 s, 4 min, 3.5 h, 2.1 d; a dash for no value."""
    if seconds is None:
        return "—"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"


async def home(request: web.Request) -> web.StreamResponse:
    """The chosen space's inbox (the switcher sends `?space=`), else the first of the
    viewer's spaces; the sign-in page for a stranger."""
    from dashboard.session import viewer_of

    viewer = await viewer_of(request)
    if viewer is None:
        raise web.HTTPSeeOther("/app/login")
    if not viewer.spaces:
        raise web.HTTPForbidden(text="you are in no space yet: ask an admin to add you")
    wanted = request.query.get("space", "")
    chosen = next((m for m in viewer.spaces if str(m.space_id) == wanted), viewer.spaces[0])
    raise web.HTTPSeeOther(f"/app/{chosen.space_id}/inbox")


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/app"):
        for name, value in SECURITY.items():
            response.headers.setdefault(name, value)
