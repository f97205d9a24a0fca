"""The page in a real browser against the daemon's API in process, with a feed and a
status set up by the test: a frozen client shows as frozen, a swap's legs and where its
secret is public, hostile chain data shown as text only. (The live path, with chain
processes, is test_browser.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from chains.crypto import PrivateKey
from chains.types import Event
from relayer import api
from relayer.config import parse_relayer_config
from relayer.daemon import Daemon
from tests.console.conftest import SHOWN_WITHIN, watch_errors

pytestmark = [pytest.mark.browser]

A, B = "chain-a", "chain-b"
HOSTILE = '<img src=x id="pwned">'


def frozen_status() -> dict[str, Any]:
    work = {
        "name": f"transfer:{A}->{B}",
        "state": "frozen",
        "source_height": 40,
        "client_id": "lc-0",
        "client_height": 31,
        "trusting_period_left_s": 3600.0,
        "backlog": 2,
        "oldest_pending_age_s": 12.5,
        "relayed": 7,
        "last_error": "",
        "misbehaviour": "client lc-0 frozen at height 31",
    }
    return {"ok": True, "problems": [], "uptime_s": 5.0, "chains": {}, "work": [work]}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Daemon, str]]:
    settings = parse_relayer_config(
        {
            "relayer": {"data_dir": str(tmp_path)},
            "api": {"port": 0},
            "chains": [
                {"id": A, "rpc": ["http://127.0.0.1:1"], "key": "devnet:relayer"},
                {"id": B, "rpc": ["http://127.0.0.1:1"], "key": "devnet:relayer"},
            ],
            "paths": [{"src": A, "dst": B, "relay": ["transfers", "swaps"]}],
        }
    )
    key = PrivateKey.derive("interlock-devnet", "relayer")
    daemon = Daemon(settings, {A: key, B: key})
    daemon.status = frozen_status  # type: ignore[method-assign]
    async with TestServer(api.build_app(daemon), host="127.0.0.1") as server:
        yield daemon, str(server.make_url("/"))


async def test_frozen_client_swap_legs_and_hostile_text(
    served: tuple[Daemon, str], browser: Browser
) -> None:
    daemon, url = served
    terms = {"hashlock": "ab" * 32, "sender": "alice", "receiver": "bob", "amount": 100}
    header = SimpleNamespace(height=9, event_root=bytes(32))
    daemon.feed.record_htlc(A, header, [Event("htlc.locked", {**terms, "denom": HOSTILE})], 1.0)
    page = await browser.new_page(viewport={"width": 1500, "height": 900})
    errors = watch_errors(page)
    await page.goto(url)
    path = page.locator(f'#paths tr[data-work="transfer:{A}->{B}"]')
    await expect(path.locator(".frozen")).to_have_text("frozen", timeout=SHOWN_WITHIN)
    await expect(path).to_contain_text("client lc-0 frozen at height 31")
    swap = page.locator(f'#items tr[data-id="swap:{"ab" * 32}"]')
    await expect(swap.locator(".state .badge")).to_have_text("locked")
    await expect(swap).to_contain_text(HOSTILE)  # shown as text ...
    assert await page.locator("#pwned").count() == 0  # ... never as markup
    # the other leg, then the claim: pushed live, no reload
    other = {**terms, "sender": "bob", "receiver": "alice", "denom": "eur"}
    daemon.feed.record_htlc(B, header, [Event("htlc.locked", other)], 2.0)
    daemon.feed.record_htlc(B, header, [Event("htlc.claimed", {**other, "preimage": "ff"})], 3.0)
    await expect(swap.locator(".state .badge")).to_have_text("secret revealed")
    await expect(swap).to_contain_text(f"secret: public on {B}")
    await expect(swap.locator(".proof")).to_contain_text(f"{B}: claimed h9 #0 root")
    assert errors == [], errors
