"""The REST API as the signed-in viewer (`dashboard.bridge`): their role, their space, the
CSRF header required for a change, and nothing outside `/api/v1/`."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from tests.dashboard.conftest import csrf_of, person, sign_in, space_url


async def test_the_api_answers_the_viewer_with_their_role(
    client: TestClient, app: Application, agent: int
) -> None:
    page = await client.get(space_url(app, "inbox"))
    csrf = csrf_of(await page.text())
    listed = await client.get(space_url(app, "api/views"))
    assert listed.status == 200 and (await listed.json())["items"] == []
    mine = {"name": "VIPs", "filter": {"all": [{"field": "tags", "op": "has_tag", "value": "vip"}]}}
    made = await client.post(
        space_url(app, "api/views"), json={**mine, "shared": False}, headers={"X-CSRF-Token": csrf}
    )
    assert made.status == 201, await made.text()
    shared = await client.post(
        space_url(app, "api/views"), json=mine, headers={"X-CSRF-Token": csrf}
    )
    assert shared.status == 403  # an agent's views are their own; sharing is a manager's
    forged = await client.post(space_url(app, "api/views"), json=mine)
    assert forged.status == 403
    assert (await client.get(space_url(app, "api/../healthz"))).status == 404
    assert (await client.get(space_url(app, "api/nothing-here"))).status == 404


async def test_a_manager_may_and_a_stranger_may_not(client: TestClient, app: Application) -> None:
    await person(app, "max@example.com", role="manager", name="Max")
    assert (await client.get(space_url(app, "api/views"), allow_redirects=False)).status == 303
    await sign_in(client, "max@example.com")
    csrf = csrf_of(await (await client.get(space_url(app, "inbox"))).text())
    mine = {"name": "All", "filter": {"all": []}}
    made = await client.post(space_url(app, "api/views"), json=mine, headers={"X-CSRF-Token": csrf})
    assert made.status == 201, await made.text()
