"""`/app/{space}/api/...`: the REST API for the signed-in viewer, so the dashboard's forms
are the API's operations (validation, roles, side effects) and not a second copy of them.

The request is handed to the API's own handler in the same process, as the viewer with
their role in the space (a manager's token would act no higher), after the session and
its CSRF token are checked; nothing is sent over the network and no token is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from yarl import URL

from bot.api.auth import PRINCIPAL, Principal
from bot.errors import NotFound
from dashboard.session import SPACE, VIEWER, page


def setup(app: web.Application) -> None:
    app.router.add_route("*", "/app/{space}/api/{tail:.*}", forward)


@page()
async def forward(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    if not tail or tail.startswith(("/", "..")) or "/../" in tail:
        raise NotFound("no such API route")
    # the same request (its body was read already: the hub reads each within its time
    # limit), matched again against the API's routes by its method and new path
    match = await request.app.router.resolve(
        _Asked(request.method, request.rel_url.with_path(f"/api/v1/{tail}"))  # type: ignore[arg-type]
    )
    if match.http_exception is not None:
        raise match.http_exception
    match.add_app(request.app)  # as the application does for a request of its own
    match.freeze()
    viewer, space = request[VIEWER], request[SPACE]
    request._match_info = match
    request._cache.pop("match_info", None)  # read once already, for the dashboard's route
    # a session, not a token: its "token id" is the person's, negated, so idempotency keys
    # (`api:{token}:{key}`) of two people never meet
    request[PRINCIPAL] = Principal(-viewer.user_id, space.space_id, viewer.user_id, space.role)
    return await match.handler(request)


@dataclass(frozen=True)
class _Asked:
    """What the router reads of a request to match it: its method and path."""

    method: str
    rel_url: URL
