"""The dashboard in headless Debian chromium (Playwright with `executable_path`), against the
real hub: an agent signs in, a web-chat visitor's conversation arrives live, the agent
answers and the visitor reads it, then assigns and closes it.

With `CHANCENTER_SCREENSHOTS=DIR` the pages are also saved there (the README's pictures).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.scenarios.hub import HubProcess
from tests.scenarios.test_browser import ARGS, CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium: apt-get install chromium"
    ),
]
EMAIL, PASSWORD = "bea@example.com", "a long enough password"


def chancenter(hub: HubProcess, *args: str, given: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=hub.env,
        input=given,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
async def browser() -> Any:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def snap(page: Any, name: str) -> None:
    where = os.environ.get("CHANCENTER_SCREENSHOTS")
    if where:
        await page.screenshot(path=str(Path(where) / f"{name}.png"), full_page=True)


async def test_an_agent_answers_a_visitor_live_then_assigns_and_closes(
    hub: HubProcess, browser: Any
) -> None:
    from playwright.async_api import expect

    token = json.loads(
        chancenter(hub, "init", "--admin-email", EMAIL, "--admin-name", "Bea", "--json")
    )["token"]
    chancenter(hub, "users", "set-password", EMAIL, "--password-stdin", given=PASSWORD + "\n")

    agent = await (await browser.new_context(viewport={"width": 1100, "height": 800})).new_page()
    dialogs: list[str] = []
    agent.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    await agent.goto(f"{hub.url}/app/")
    await expect(agent).to_have_title("Sign in · ChanCenter")
    await snap(agent, "login")
    await agent.get_by_label("Email").fill(EMAIL)
    await agent.get_by_label("Password").fill(PASSWORD)
    await agent.get_by_role("button", name="Sign in").click()
    await expect(agent).to_have_title("Inbox · Default · ChanCenter")
    await expect(agent.locator(".empty")).to_have_text("No conversations here.")

    visitor = await (await browser.new_context()).new_page()
    await visitor.goto(hub.url)
    await visitor.locator(".launcher").click()
    await visitor.locator("input[name=text]").fill("<b>Ana</b> wants a human")
    await visitor.locator("input[name=text]").press("Enter")
    await visitor.locator("input[name=text]").fill("talk to a human")
    await visitor.locator("input[name=text]").press("Enter")

    # no reload: the inbox hears of it
    row = agent.locator(".conversation").first
    await expect(row).to_be_visible(timeout=15_000)
    await expect(row.locator(".state")).to_contain_text("waiting", timeout=15_000)
    await snap(agent, "inbox")
    await row.locator("a").click()
    await expect(agent.locator(".transcript")).to_contain_text("<b>Ana</b> wants a human")
    assert await agent.locator(".transcript b").count() == 0  # shown as text

    await agent.get_by_label("Reply to").fill("Hi, Bea here. How can I help?")
    await agent.get_by_role("button", name="Send").click()
    await expect(agent.locator(".msg.out").last).to_contain_text("Hi, Bea here.")
    await expect(visitor.locator(".msg.out").last).to_contain_text(
        "Hi, Bea here. How can I help?", timeout=10_000
    )
    await expect(agent.get_by_label("Reply to")).to_have_value("")  # ready for the next one
    status = agent.locator(".msg.out .status").last  # the widget is open: it reads it at once
    await expect(status).to_have_text(re.compile("sent|delivered|read"), timeout=10_000)
    await snap(agent, "conversation")

    await agent.get_by_label("Assign to").select_option(label="Bea")
    await agent.get_by_role("button", name="Assign", exact=True).click()
    await expect(agent.locator(".conversation-handler")).to_have_text("agent")
    await agent.get_by_role("button", name="Close").click()
    await expect(agent.locator(".conversation-status")).to_have_text("closed")

    await agent.goto(f"{hub.url}/app/")
    await agent.get_by_label("Status").select_option("closed")
    await expect(agent.locator(".conversation")).to_have_count(1)

    # a view of the contacts who speak English, and its count
    await agent.get_by_role("link", name="Contacts").click()
    await expect(agent).to_have_title("Contacts · Default · ChanCenter")
    await expect(agent.locator("#contact-count")).to_have_text("1 contact")
    await agent.get_by_label("Name", exact=True).fill("English speakers")
    await agent.get_by_label("Filter").fill(
        '{"all": [{"field": "language", "op": "starts_with", "value": "en"}]}'
    )
    await agent.get_by_role("button", name="Save view").click()
    count = agent.locator('.view-count[data-view="English speakers"]')
    await expect(count).to_have_text("1")
    await snap(agent, "contacts")

    # reports: the chart's numbers are the API's
    await agent.get_by_role("link", name="Reports").click()
    await expect(agent).to_have_title("Reports · Default · ChanCenter")
    chart = await agent.wait_for_function(
        "() => window.Chart && Chart.getChart(document.getElementById('report-chart'))"
    )
    drawn = await agent.evaluate(
        "() => Chart.getChart(document.getElementById('report-chart')).data.datasets"
        ".map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])"
    )
    assert chart is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{hub.url}/api/v1/reports/summary", headers={"Authorization": f"Bearer {token}"}
        ) as resp,
    ):
        api = await resp.json()
    totals = {key: sum(d[key] for d in api["days"]) for key in ("opened", "closed", "in", "out")}
    assert dict(drawn) == {
        "Opened": totals["opened"],
        "Closed": totals["closed"],
        "Messages in": totals["in"],
        "Messages out": totals["out"],
    }
    assert totals["opened"] == totals["closed"] == 1 and totals["in"] >= 2
    await expect(agent.locator("#total-opened")).to_have_text("1")
    await snap(agent, "reports")

    # a phone's width: nothing wider than the screen
    await agent.set_viewport_size({"width": 360, "height": 740})
    for path in ("inbox", "contacts", "reports", "conversations/1"):
        await agent.goto(f"{hub.url}/app/1/{path}")
        wide = await agent.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 360, f"{path} is {wide} px wide at 360"
    await agent.set_viewport_size({"width": 1100, "height": 800})
    await agent.goto(f"{hub.url}/app/1/reports")

    await agent.get_by_role("link", name="Settings").click()
    await expect(agent.get_by_role("heading", name="API tokens")).to_be_visible()
    await snap(agent, "settings")
    assert dialogs == []
