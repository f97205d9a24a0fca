"""The daemon as a market maker, as processes: Mosquitto, two ``interlock chain start``
processes, ``interlock start`` with a ``[[makers]]`` entry (devnet:alice, funded in
genesis), and a taker running ``interlock swap offers`` and ``swap accept --wait`` as
subprocesses; balances are read over the chains' RPC. The daemon is killed -9 after the
taker accepted and the maker locked, and restarted: the swap completes for both. After
the budget's two swaps, no offer is published."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from chains.service.bus import open_bus
from chains.service.rpc_client import HttpChain
from interlock.offers import (
    ACCEPTS_TOPIC,
    OFFERS_FILTER,
    Offer,
    encode,
    make_acceptance,
    parse_offer,
)
from tests.conftest import Mosquitto
from tests.e2e.harness import DEADLINE, ROOT, A, B, balance, chain, eventually, key, network
from tests.e2e.test_relayer import http_json, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ALICE, BOB, MALLORY = key("alice"), key("bob"), key("mallory")

MAKERS = """
[[makers]]
name = "desk"
key = "devnet:alice"
give = "100usd@chain-a"
take = "92eur@chain-b"
offer_lifetime = 300
max_swaps = 2
"""


def swap_cli(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "interlock.cli", "swap", *args],
        cwd=ROOT, env={**os.environ, "INTERLOCK_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def listed(url: str) -> list[dict[str, object]]:
    """``interlock swap offers --json``: the open offers that verify."""
    r = subprocess.run(
        [sys.executable, "-m", "interlock.cli", "swap", "offers", "--json", "--bus-url", url],
        cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    offers = json.loads(r.stdout)["offers"]
    assert isinstance(offers, list)
    return offers


def swap_list(home: Path) -> list[dict[str, str]]:
    r = subprocess.run(
        [sys.executable, "-m", "interlock.cli", "swap", "list", "--json"],
        cwd=ROOT, env={**os.environ, "INTERLOCK_HOME": str(home)},
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["swaps"]
    assert isinstance(rows, list)
    return rows


def finish(p: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        out, err = p.communicate(timeout=DEADLINE * 2)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"the taker timed out:\n{out}\n{err}") from None
    return p.returncode, out + err


async def holdings(ha: HttpChain, hb: HttpChain) -> tuple[int, int, int, int]:
    return (
        await balance(ha, ALICE.address, "usd"), await balance(hb, ALICE.address, "eur"),
        await balance(ha, BOB.address, "usd"), await balance(hb, BOB.address, "eur"),
    )  # fmt: skip


async def the_offer(url: str, not_this: str = "") -> str:
    """The id of the daemon's open offer (alice's), once one other than ``not_this`` shows."""
    found: list[str] = []

    async def shown() -> bool:
        found[:] = [str(o["offer_id"]) for o in listed(url) if o["offer_id"] != not_this]
        return bool(found)

    await eventually(shown, "the daemon's offer in 'swap offers'")
    assert len(found) == 1, found
    return found[0]


async def forge_acceptance(url: str, offer_id: str) -> None:
    """Mallory's acceptance with bob's address swapped in: the signature fails."""
    async with open_bus(url) as bus:
        offer: Offer | None = None
        async with bus.subscribe(f"interlock/v1/swaps/offers/{offer_id}") as sub:
            async for msg in sub:
                offer = parse_offer(msg.payload, now_ms=time.time_ns() // 10**6, offer_id=offer_id)
                break
        assert offer is not None
        acc = make_acceptance(
            MALLORY, offer, address_a=MALLORY.address, expires_ms=offer.expires_ms
        )
        body = json.loads(encode(acc))
        body["address_a"] = BOB.address
        await bus.publish(ACCEPTS_TOPIC.format(offer_id=offer_id), orjson.dumps(body))


async def test_the_daemon_makes_the_market_survives_kill_9_and_keeps_its_budget(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    url = own_mosquitto.url
    with network(own_mosquitto, tmp_path) as net:
        assert net.config is not None
        config = tmp_path / "maker.toml"
        config.write_text(net.config.read_text() + MAKERS)
        daemon = net.relayer("maker", config)
        await wait_ready(daemon)
        taker = ["--key", "devnet:bob", "--wait", "--config", str(net.config), "--bus-url", url]
        async with chain(net, A) as ha, chain(net, B) as hb:
            start = await holdings(ha, hb)

            # 1. the taker sees the daemon's offer and accepts it
            first = await the_offer(url)
            shown = {str(o["offer_id"]): o for o in listed(url)}[first]
            assert shown["maker"] == ALICE.public_key.hex()
            assert (shown["give"], shown["take"]) == (
                {"chain_id": A, "denom": "usd", "amount": 100, "address": ALICE.address},
                {"chain_id": B, "denom": "eur", "amount": 92, "address": ALICE.address},
            )  # fmt: skip
            await forge_acceptance(url, first)

            async def forged_counted() -> bool:
                text = await _text(f"{daemon.api}/metrics")
                line = 'interlock_maker_refused_total{reason="forged",work="maker:desk"} 1.0'
                return line in text

            await eventually(forged_counted, "the forged acceptance refused and counted")
            proc = swap_cli(tmp_path / "bob", "accept", first, *taker)

            # 2. the maker locks on chain-a; the daemon is killed -9 there, and restarted
            async def maker_locked() -> bool:
                return await balance(ha, ALICE.address, "usd") == start[0] - 100

            await eventually(maker_locked, "the maker's lock on chain-a")
            daemon.kill9()
            assert await balance(hb, ALICE.address, "eur") == start[1]  # not claimed yet
            daemon.start()
            await wait_ready(daemon)
            code, out = finish(proc)
            assert code == 0, out
            assert "redeemed" in out

            async def paid(n: int) -> bool:
                got = await holdings(ha, hb)
                a_usd, a_eur, b_usd, b_eur = start
                return got == (a_usd - 100 * n, a_eur + 92 * n, b_usd + 100 * n, b_eur - 92 * n)

            await eventually(lambda: paid(1), "both sides paid for the first swap")
            assert "resumed swap" in (net.tmp / "maker" / "stderr.2").read_text()

            # 3. a second taker; then the budget (two swaps) is spent
            second = await the_offer(url, not_this=first)
            code, out = finish(swap_cli(tmp_path / "bob", "accept", second, *taker))
            assert code == 0, out
            await eventually(lambda: paid(2), "both sides paid for the second swap")

            async def spent() -> bool:
                _, body = await http_json(f"{daemon.api}/status")
                assert isinstance(body, dict)
                (work,) = [w for w in body["work"] if w["name"] == "maker:desk"]
                m = work["maker"]
                return bool(m["budget_left"]["swaps"] == 0 and not m["swaps_in_flight"])

            await eventually(spent, "the budget spent, nothing in flight")
            _, body = await http_json(f"{daemon.api}/status")
            assert isinstance(body, dict)
            (work,) = [w for w in body["work"] if w["name"] == "maker:desk"]
            assert work["maker"]["offer_id"] is None
            assert work["maker"]["spent"] == {"swaps": 2, "given": 200}
            assert listed(url) == []
            metrics = await _text(f"{daemon.api}/metrics")
            assert 'interlock_maker_swaps_total{outcome="redeemed",work="maker:desk"}' in metrics
        # the daemon's swaps, as 'swap list' reads a home: both redeemed
        rows = swap_list(net.tmp / "maker" / "makers" / "desk")
        assert sorted((row["offer_id"], row["state"]) for row in rows) == sorted(
            [(first, "redeemed"), (second, "redeemed")]
        )


async def test_three_takers_at_once_are_all_redeemed_with_nothing_refused(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """``max_swaps = 3`` and three takers (bob, carol, dave), each ``swap accept --wait``
    started as soon as the daemon's next offer shows: the three swaps are in flight
    together on the maker's key, all are redeemed on both chains (balances over RPC), and
    ``/metrics`` counts no failed transaction of the maker's."""
    url = own_mosquitto.url
    takers = (BOB, key("carol"), key("dave"))
    # 2.5 s blocks: the three takers (about 0.8 s apart) accept within a block or two, so
    # the maker's locks, then its claims, tend to fall into the same blocks
    with network(own_mosquitto, tmp_path, interval=2.5) as net:
        assert net.config is not None
        config = tmp_path / "maker.toml"
        config.write_text(net.config.read_text() + MAKERS.replace("max_swaps = 2", "max_swaps = 3"))
        daemon = net.relayer("maker", config)
        await wait_ready(daemon)
        async with chain(net, A) as ha, chain(net, B) as hb:
            who = [ALICE, *takers]
            start = [(await balance(ha, k.address, "usd"), await balance(hb, k.address, "eur"))
                     for k in who]  # fmt: skip
            procs: list[subprocess.Popen[str]] = []
            offers: list[str] = []
            for name in ("bob", "carol", "dave"):
                offers.append(await next_offer(url, offers))
                procs.append(swap_cli(
                    tmp_path / name, "accept", offers[-1], "--key", f"devnet:{name}", "--wait",
                    "--config", str(net.config), "--bus-url", url,
                ))  # fmt: skip

            async def in_flight() -> bool:
                _, body = await http_json(f"{daemon.api}/status")
                assert isinstance(body, dict)
                (work,) = [w for w in body["work"] if w["name"] == "maker:desk"]
                return len(work["maker"]["swaps_in_flight"]) == 3

            await eventually(in_flight, "three swaps in flight at once")
            for p in procs:
                code, out = finish(p)
                assert code == 0, out
                assert "redeemed" in out

            async def paid() -> bool:
                got = [(await balance(ha, k.address, "usd"), await balance(hb, k.address, "eur"))
                       for k in who]  # fmt: skip
                want = [(start[0][0] - 300, start[0][1] + 276)]
                want += [(usd + 100, eur - 92) for usd, eur in start[1:]]
                return got == want

            await eventually(paid, "the maker and the three takers paid")
            metrics = await _text(f"{daemon.api}/metrics")
            redeemed = 'interlock_maker_swaps_total{outcome="redeemed",work="maker:desk"} 3.0'
            assert redeemed in metrics
            failures = [ln for ln in metrics.splitlines() if ln.startswith("interlock_maker_tx_")]
            assert failures == [], failures
            print("maker locks by height on chain-a:", await locks_by_height(ha))
        rows = swap_list(net.tmp / "maker" / "makers" / "desk")
        assert sorted((row["offer_id"], row["state"]) for row in rows) == sorted(
            (o, "redeemed") for o in offers
        )


async def next_offer(url: str, seen: list[str]) -> str:
    """The id of the daemon's next open offer, read from the bus itself (retained): the
    CLI's ``swap offers`` takes a second a call, and these takers are meant to overlap."""
    async with open_bus(url) as bus, bus.subscribe(OFFERS_FILTER) as sub:
        async with asyncio.timeout(DEADLINE):
            async for msg in sub:
                oid = msg.topic.rsplit("/", 1)[-1]
                if msg.payload and oid not in seen:
                    return oid
    raise AssertionError("the offers subscription ended")


async def locks_by_height(h: HttpChain) -> dict[int, int]:
    """Heights of chain-a's blocks holding alice's locks (how close the swaps ran)."""
    out: dict[int, int] = {}
    for height in range(1, await h.latest_height() + 1):
        block = await h.get_block(height)
        assert block is not None
        n = sum(
            1
            for e in block.events
            if e.type == "htlc.locked" and e.attributes.get("sender") == ALICE.address
        )
        if n:
            out[height] = n
    return out


async def _text(url: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return await r.text()
