"""The console in a real browser: Mosquitto, two chain processes, ``interlock start``,
and Debian's headless Chromium driven by Playwright (never a downloaded browser).

The page is checked as an operator sees it: the chains reachable, a transfer made on
the chain reaching its final state on the page, a stopped chain shown unreachable. The
browser's console must stay free of errors (a content-security policy violation is
one). Set ``CONSOLE_SCREENSHOT=docs/console.png`` to keep the README's screenshot.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import Mosquitto
from tests.console.conftest import SHOWN_WITHIN, watch_errors
from tests.e2e.harness import A, B, chain, key, lock, network
from tests.e2e.test_relayer import wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.browser]

UNREACHABLE_WITHIN = 20_000
"""ms for a stopped chain to show unreachable (probe every 1 s, 2 s timeout)."""
ALICE, BOB = key("alice"), key("bob")


async def test_console_shows_a_transfer_live_and_a_stopped_chain(
    own_mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    with network(own_mosquitto, tmp_path) as net:
        relayer = net.relayer()
        port = await wait_ready(relayer)
        page = await browser.new_page(viewport={"width": 1500, "height": 1000})
        errors = watch_errors(page)
        resp = await page.goto(f"http://127.0.0.1:{port}/")
        assert resp is not None
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        await expect(page.locator("#conn")).to_have_text("live", timeout=SHOWN_WITHIN)
        for cid in (A, B):
            row = page.locator(f'#chains tr[data-chain="{cid}"]')
            await expect(row.locator(".reach")).to_have_text("reachable", timeout=SHOWN_WITHIN)
        await expect(
            page.locator('#paths tr[data-work="transfer:chain-a->chain-b"]')
        ).to_have_count(1)

        async with chain(net, A) as a:
            nonce = await lock(a, ALICE, B, BOB.address, 100, "usd")
        row = page.locator(f'#items tr[data-id="transfer:{A}->{B}#{nonce}"]')
        await expect(row.locator(".state .badge")).to_have_text("minted", timeout=SHOWN_WITHIN)
        # its proof: the lock event at a source height, with the block's event root
        await expect(row.locator(".proof")).to_contain_text(f"bridge.locked @ {A} h")
        await expect(row.locator(".proof")).to_contain_text("root ")

        # the search box narrows the list to what matches
        await page.fill("#search", BOB.address[:20])
        await expect(row).to_have_count(1)
        await page.fill("#search", "no-such-thing")
        await expect(row).to_have_count(0)
        await page.fill("#search", "")

        shot = os.environ.get("CONSOLE_SCREENSHOT")
        await page.screenshot(path=shot or str(tmp_path / "console.png"), full_page=True)

        net.chains[B].kill9()
        stopped = page.locator(f'#chains tr[data-chain="{B}"] .reach')
        await expect(stopped).to_have_text("unreachable", timeout=UNREACHABLE_WITHIN)
        await expect(page.locator(f'#chains tr[data-chain="{A}"] .reach')).to_have_text("reachable")
        assert errors == [], errors
        assert relayer.terminate() == 0
