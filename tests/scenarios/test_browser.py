"""The real widget in headless Debian chromium (Playwright, never a downloaded browser)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.scenarios.hub import HubProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium: apt-get install chromium"
    ),
]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def page(tmp_path: Path):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context()
        yield await context.new_page()
        await browser.close()


async def test_visitor_says_hi_clicks_a_quick_reply_and_keeps_history_on_reload(
    hub: HubProcess, page, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    await page.goto(hub.url)
    await page.locator(".launcher").click()
    await expect(page.locator(".state")).to_have_text("online")

    await page.locator("input[name=text]").fill("hi")
    await page.locator("input[name=text]").press("Enter")
    welcome = page.locator(".msg.out").first
    await expect(welcome).to_contain_text("Hi! I'm the ChanCenter assistant")
    await expect(page.locator(".msg.in").first).to_contain_text("✓")

    await page.locator(".replies button", has_text="Pricing").click()
    await expect(page.locator(".msg.out").nth(1)).to_contain_text("Starter is free")

    # a message that looks like HTML is shown as text and runs nothing
    attack = "<img src=x onerror=alert(1)>"
    await page.locator("input[name=text]").fill(attack)
    await page.locator("input[name=text]").press("Enter")
    await expect(page.locator(".msg.in").nth(2)).to_contain_text(attack)
    await expect(page.locator(".msg.out").nth(2)).to_contain_text("Sorry, I didn't get that")
    assert await page.locator(".log img").count() == 0
    await page.screenshot(path=str(tmp_path / "widget.png"))

    await page.reload()
    await page.locator(".launcher").click()
    log = page.locator(".log")
    await expect(page.locator(".msg")).to_have_count(6)
    await expect(log).to_contain_text("Hi! I'm the ChanCenter assistant")
    await expect(page.locator(".msg.in").nth(1)).to_have_text("Pricing✓✓")
    await expect(log).to_contain_text("Starter is free")
    await expect(page.locator(".msg.in").nth(2)).to_contain_text(attack)
    assert dialogs == []
