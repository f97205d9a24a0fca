"""The console in a real browser: Mosquitto, two chain processes, ``interlock start``,
and Debian's headless Chromium driven by Playwright (never a downloaded browser).

The page is checked as an operator sees it: the chains reachable with their engine,
block interval and the relayer's balance; a transfer made with ``interlock transfer`` reaching its
final state, found by its lock's transaction hash; one refused by the destination's
compliance policy shown refused and refunded; a stopped chain shown unreachable; a swap
made with ``interlock swap`` (subprocesses) reaching ``claimed`` with both legs and who
holds the secret; a client frozen by real misbehaviour shown frozen while the chains
stay live. The browser's console must stay free of errors (a content-security policy
violation is one). Set ``CONSOLE_SCREENSHOT=docs/console.png`` to keep the README's
screenshot.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.lightclient import HeaderUpdate
from tests.conftest import Mosquitto
from tests.console.conftest import SHOWN_WITHIN, watch_errors
from tests.e2e.harness import SEED, A, B, chain, key, lock, network, run_cli, send
from tests.e2e.test_relayer import wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.browser]

UNREACHABLE_WITHIN = 20_000
"""ms for a stopped chain to show unreachable (probe every 1 s, 2 s timeout)."""
ALICE, BOB, CAROL = key("alice"), key("bob"), key("carol")


def transfer(recipient: str, amount: int) -> dict[str, Any]:
    return {"denom": "usd", "amount": amount, "dest_chain": B, "recipient": recipient}


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
        for cid, denom in ((A, "usd"), (B, "eur")):
            row = page.locator(f'#chains tr[data-chain="{cid}"]')
            await expect(row.locator(".reach")).to_have_text("reachable", timeout=SHOWN_WITHIN)
            await expect(row.locator(".engine")).to_have_text("BFT")
            await expect(row.locator(".interval")).to_have_text("0.2 s")  # the harness's
            await expect(row.locator(".balance")).to_contain_text(f" {denom}")
        await expect(
            page.locator('#paths tr[data-work="transfer:chain-a->chain-b"]')
        ).to_have_count(1)

        # the transfer is made by a person at the shell: `interlock transfer`
        rpc = [x for c in (A, B) for x in ("--rpc", net.chains[c].url)]
        r = run_cli(
            "transfer", "100usd", "--from", A, "--to", B, "--recipient", BOB.address,
            "--key", "devnet:alice", *rpc, "--json",
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        sent = json.loads(r.stdout)
        nonce = int(sent["id"].rsplit(":", 1)[1])  # chain-a:chain-b:NONCE
        row = page.locator(f'#items tr[data-id="transfer:{A}->{B}#{nonce}"]')
        await expect(row.locator(".state .badge")).to_have_text("minted", timeout=SHOWN_WITHIN)
        # its proof: the lock event at a source height, with the block's event root
        await expect(row.locator(".proof")).to_contain_text(f"bridge.locked @ {A} h")
        await expect(row.locator(".proof")).to_contain_text("root ")
        await expect(row.locator(".proof")).to_contain_text("mint tx ")
        await expect(row).to_contain_text("locked → header relayed → minted")

        # the search box narrows the list to what matches: an address, the lock's
        # transaction (which only chain-a knows: the daemon asks the chains), nothing
        await page.fill("#search", BOB.address[:20])
        await expect(row).to_have_count(1)
        await page.fill("#search", "no-such-thing")
        await expect(row).to_have_count(0)
        await page.fill("#search", sent["tx_hash"])
        await expect(page.locator("#items tbody tr")).to_have_count(1)
        await expect(row).to_have_count(1)
        await page.fill("#search", "")

        # chain-b's policy refuses a transfer to carol on arrival; chain-a refunds it
        async with chain(net, B) as b:
            gov = PrivateKey.derive(SEED, B, "gov")
            denied = await send(b, gov, "compliance", "deny", {"address": CAROL.address})
            assert denied.ok, denied.error
        async with chain(net, A) as a:
            refused = await lock(a, ALICE, B, CAROL.address, 70, "usd")
        row = page.locator(f'#items tr[data-id="transfer:{A}->{B}#{refused}"]')
        await expect(row.locator(".state .badge")).to_have_text("refunded", timeout=SHOWN_WITHIN)
        await expect(row).to_contain_text("refused: sanctions → refunded")

        shot = os.environ.get("CONSOLE_SCREENSHOT")
        await page.screenshot(path=shot or str(tmp_path / "console.png"), full_page=True)

        net.chains[B].kill9()
        stopped = page.locator(f'#chains tr[data-chain="{B}"] .reach')
        await expect(stopped).to_have_text("unreachable", timeout=UNREACHABLE_WITHIN)
        await expect(page.locator(f'#chains tr[data-chain="{A}"] .reach')).to_have_text("reachable")
        assert errors == [], errors
        assert relayer.terminate() == 0


def swap(net: Any, *args: str) -> dict[str, Any]:
    """One ``interlock swap`` verb as a subprocess; its JSON answer."""
    rpc = [x for c in (A, B) for x in ("--rpc", net.chains[c].url)]
    r = run_cli("swap", *args, *rpc, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    answer: dict[str, Any] = json.loads(r.stdout)
    return answer


async def test_console_shows_a_cli_swap_and_a_client_frozen_by_misbehaviour(
    own_mosquitto: Mosquitto, tmp_path: Path, browser: Browser
) -> None:
    with network(own_mosquitto, tmp_path) as net:
        # before the daemon starts: chain-a's validators (a devnet's keys, which the test
        # holds) sign a second header for the height of a lock, and carol gives it to
        # chain-b's client. The daemon, comparing with chain-a's own header, submits the
        # real one: two valid commits for one height freeze the client
        async with chain(net, A) as a, chain(net, B) as b:
            sent = await send(a, ALICE, "bridge", "lock", transfer(BOB.address, 10))
            assert sent.ok, sent.error
            real, vals = await a.get_header(sent.height), await a.get_validators(sent.height)
            assert real is not None
            assert vals is not None
            forged = dataclasses.replace(real, state_root=os.urandom(32))
            signers = [PrivateKey.derive(SEED, A, "validator", str(v)) for v in range(4)]
            path = await b.query("bridge", "path", {"remote_chain": A})
            client_id = path["client_id"]  # type: ignore[index,call-overload]
            got = await b.query("lightclient", "client", {"client_id": client_id})
            trusted = int(got["latest_height"])  # type: ignore[index,call-overload]
            update = HeaderUpdate(forged, sign_commit(forged, signers), vals, trusted, vals)
            args = {"client_id": client_id, "update": update.to_json()}
            assert (await send(b, CAROL, "lightclient", "update_client", args)).ok

        relayer = net.relayer()
        port = await wait_ready(relayer)
        page = await browser.new_page(viewport={"width": 1500, "height": 1000})
        errors = watch_errors(page)
        await page.goto(f"http://127.0.0.1:{port}/")
        frozen = page.locator(f'#paths tr[data-work="transfer:{A}->{B}"]')
        await expect(frozen.locator(".frozen")).to_have_text("frozen", timeout=SHOWN_WITHIN)
        await expect(frozen.locator(".state")).to_have_text("frozen", timeout=SHOWN_WITHIN)
        await expect(frozen).to_contain_text(
            f"MISBEHAVIOUR: {B}'s client {client_id} holds header {forged.hash.hex()[:16]} "
            f"at {A} height {sent.height}, the chain says {real.hash.hex()[:16]}"
        )
        # the chains stay live: reachable, their heights still moving
        heights = {}
        for cid in (A, B):
            row = page.locator(f'#chains tr[data-chain="{cid}"]')
            await expect(row.locator(".reach")).to_have_text("reachable")
            heights[cid] = int(await row.locator(".height").inner_text())
        for cid in (A, B):
            moved = page.locator(f'#chains tr[data-chain="{cid}"] .height')
            await expect(moved).not_to_have_text(str(heights[cid]), timeout=SHOWN_WITHIN)
        stuck = f"transfer:{A}->{B}#{sent.events[-1].attributes['nonce']}"
        # never minted through a frozen client
        await expect(page.locator(f'#items tr[data-id="{stuck}"] .state')).to_have_text("locked")

        # an atomic swap by hand, as two users would make it with the CLI
        init = swap(net, "initiate", "devnet:bob", "100usd", "--chain", A, "--key",
                    "devnet:alice", "--locktime", "10m")  # fmt: skip
        hashlock, secret = str(init["hashlock"]), str(init["secret"])
        row = page.locator(f'#items tr[data-id="swap:{hashlock}"]')
        await expect(row.locator(".state .badge")).to_have_text("locked", timeout=SHOWN_WITHIN)
        await expect(row).to_contain_text("secret: the initiator")
        part = swap(net, "participate", "devnet:alice", "92eur", hashlock, "--chain", B,
                    "--key", "devnet:bob", "--locktime", "5m")  # fmt: skip
        await expect(row.locator(".proof")).to_contain_text(f"{B}: locked h", timeout=SHOWN_WITHIN)
        # alice redeems on chain-b, revealing the secret there; the daemon's watchtower
        # claims chain-a's leg for bob with it (anyone may)
        swap(net, "redeem", str(part["lock_id"]), secret, "--chain", B, "--key", "devnet:alice")
        await expect(row.locator(".state .badge")).to_have_text("claimed", timeout=SHOWN_WITHIN)
        await expect(row).to_contain_text(f"secret: public on {A}, {B}")
        await expect(row).to_contain_text("locked → secret revealed → claimed")
        for cid in (A, B):
            await expect(row.locator(".proof")).to_contain_text(f"{cid}: claimed h")
        await expect(row).to_contain_text("100 usd ⇄ 92 eur")
        assert secret not in await page.content()  # the page never shows the preimage
        assert errors == [], errors
        assert relayer.terminate() == 0
