"""A lying endpoint in front of a real chain process: it says a lock exists that does
not. ``interlock swap audit`` refuses it in one line, and a taker driven by ``swap accept
--wait`` does not lock, because both believe only what is proven against headers verified
from the chain's genesis (the chain file given with ``--config``).

The lie is served by a small aiohttp proxy in this test: every request goes through to
the chain process unchanged, except the ``htlc/lock`` query for the fabricated lock id
(and, in one case, the event index's answer too)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from chains.crypto import PrivateKey
from chains.service.bus import open_bus
from chains.service.rpc_client import HttpChain
from htlc.types import Lock, LockStatus, LockTerms
from interlock.offer_steps import measure_safety, messages, next_message
from interlock.offers import (
    ACCEPTS_TOPIC,
    ANSWERS_TOPIC,
    OFFERS_TOPIC,
    Leg,
    compute_terms,
    encode,
    make_answer,
    make_offer,
    parse_acceptance,
)
from tests.conftest import Mosquitto, free_port
from tests.interlock import test_cmd_swap
from tests.interlock.test_cmd_swap import ROOT, SEED, interlock, wait_ready
from tests.interlock.test_processes import ChainProcess

ALICE, BOB = PrivateKey.derive(SEED, "alice"), PrivateKey.derive(SEED, "bob")
CONFIGS = {cid: ROOT / "configs" / f"{cid}.toml" for cid in ("chain-a", "chain-b")}


class LyingProxy:
    """Forwards to ``upstream``; answers the ``htlc/lock`` query of ``fake`` with it,
    open, and (``lie_in_index``) lists a made-up ``htlc.locked`` event for it too."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fake: Lock | None = None
        self.lie_in_index = False
        self.lies = 0
        self.lied = asyncio.Event()
        self.port = free_port()

    def _lied(self) -> None:
        self.lies += 1
        self.lied.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        fake = self.fake
        if (
            fake is not None
            and request.path == "/query/htlc/lock"
            and orjson.loads(body or b"{}").get("lock_id") == fake.lock_id.hex()
        ):
            self._lied()
            record = {**fake.to_json(), "opened": 2}
            return web.json_response({"result": record})
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method,
                self.upstream + request.path_qs,
                data=body,
                headers={"Content-Type": request.content_type},
            ) as r,  # fmt: skip
        ):
            raw = await r.read()
            status = r.status
        if (
            fake is not None
            and self.lie_in_index
            and request.path == "/events"
            and request.query.get("attr") == f"lock_id:{fake.lock_id.hex()}"
        ):
            self._lied()
            event = {"type": "htlc.locked", "attributes": fake.to_json()}
            page = {"events": [{"height": 2, "index": 0, "event": event}], "next": None}
            return web.json_response(page)
        return web.Response(body=raw, status=status, content_type="application/json")

    async def __aenter__(self) -> LyingProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


chains = test_cmd_swap.chains  # the fixture: chain-a and chain-b as processes


@pytest.fixture
async def proxy(chains: dict[str, ChainProcess]) -> AsyncIterator[LyingProxy]:
    for cid, p in chains.items():
        await wait_ready(p.url, cid)
    async with LyingProxy(chains["chain-a"].url) as px:
        yield px


def an_unlocked_lock(height: int) -> Lock:
    """Terms alice might have locked with, and never did."""
    hashlock = hashlib.sha256(os.urandom(32)).digest()
    terms = LockTerms("chain-a", ALICE.address, BOB.address, "usd", 100, hashlock, height + 900)
    return Lock(terms, LockStatus.LOCKED)


async def run(*argv: str) -> subprocess.CompletedProcess[str]:
    """``interlock ARGV`` in a thread: the proxy answers from this event loop."""
    return await asyncio.to_thread(interlock, *argv)


async def audit(proxy: LyingProxy, lock: Lock) -> subprocess.CompletedProcess[str]:
    return await run(
        "swap", "audit", lock.lock_id.hex(), "--chain", "chain-a", "--amount", "100usd",
        "--receiver", "devnet:bob", "--rpc", proxy.url, "--config", str(CONFIGS["chain-a"]),
    )  # fmt: skip


@pytest.mark.slow
async def test_audit_refuses_a_lock_the_endpoint_made_up(
    proxy: LyingProxy,
    chains: dict[str, ChainProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "home"))
    async with HttpChain("chain-a", [chains["chain-a"].url]) as a:
        proxy.fake = an_unlocked_lock(await a.latest_height())
    # the state query lies; the index (real) has no such event
    r = await audit(proxy, proxy.fake)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "chain-a: lock" in r.stderr
    assert "no proven htlc.locked event with these terms" in r.stderr
    assert "audit: ok" not in r.stdout
    # the index lies too: the event it names is not the block's
    proxy.lie_in_index = True
    r = await audit(proxy, proxy.fake)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "chain-a: cannot verify event 0 at height 2" in r.stderr
    assert proxy.lies >= 3
    # the honest path through the same proxy: a real lock passes, proven
    proxy.fake, proxy.lie_in_index = None, False
    init = await run(
        "swap", "initiate", "devnet:bob", "100usd", "--chain", "chain-a", "--key",
        "devnet:alice", "--locktime", "10m", "--rpc", proxy.url, "--json",
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    lock_id = orjson.loads(init.stdout)["lock_id"]
    ok = await run(
        "swap", "audit", lock_id, "--chain", "chain-a", "--amount", "100usd", "--receiver",
        "devnet:bob", "--rpc", proxy.url, "--config", str(CONFIGS["chain-a"]), "--json",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    got = orjson.loads(ok.stdout)
    assert got["audit"] == "ok"
    assert got["proof"]["anchor"] == f"the genesis of {CONFIGS['chain-a']}"
    assert ok.stderr == ""  # a genesis anchor: no first-use warning


async def _play_a_lying_maker(
    bus_url: str, proxy: LyingProxy, a: HttpChain, b: HttpChain
) -> tuple[Lock, subprocess.Popen[str]]:
    """Offer, answer the first acceptance, and never lock: the proxy says we did."""
    now = time.time_ns() // 1_000_000
    offer = make_offer(
        ALICE, Leg("chain-a", "usd", 100, ALICE.address), Leg("chain-b", "eur", 92, ALICE.address),
        expires_ms=now + 120_000,
    )  # fmt: skip
    oid = offer.offer_id.hex()
    async with open_bus(bus_url) as bus, messages(bus, ACCEPTS_TOPIC.format(offer_id=oid)) as q:
        await bus.publish(OFFERS_TOPIC.format(offer_id=oid), encode(offer), retain=True)
        taker = start_taker(bus_url, proxy, oid, b)
        msg = await next_message(q, time.monotonic() + 60)
        assert msg is not None, "no acceptance"
        acc = parse_acceptance(msg.payload, offer, now_ms=time.time_ns() // 1_000_000)
        answer, terms = make_answer(
            ALICE, offer, acc, hashlock=hashlib.sha256(os.urandom(32)).digest(),
            safety=await measure_safety(a, b), height_a=await a.latest_height(),
            height_b=await b.latest_height(),
        )  # fmt: skip
        assert compute_terms(offer, acc, answer) == terms
        proxy.fake = Lock(terms.a, LockStatus.LOCKED)  # from now on the proxy says it is there
        await bus.publish(ANSWERS_TOPIC.format(offer_id=oid), encode(answer), retain=True)
        return proxy.fake, taker


def start_taker(bus_url: str, proxy: LyingProxy, oid: str, b: HttpChain) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "interlock.cli", "swap", "accept", oid, "--key", "devnet:bob",
            "--wait", "--bus-url", bus_url, "--rpc", proxy.url, "--rpc", b.endpoints[0],
            "--config", str(CONFIGS["chain-a"]), "--config", str(CONFIGS["chain-b"]),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.broker
async def test_a_taker_does_not_lock_against_a_lock_the_endpoint_made_up(
    proxy: LyingProxy,
    chains: dict[str, ChainProcess],
    own_mosquitto: Mosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "taker"))
    async with (
        HttpChain("chain-a", [chains["chain-a"].url]) as a,
        HttpChain("chain-b", [chains["chain-b"].url]) as b,
    ):
        before = await b.query("bank", "balance", {"address": BOB.address, "denom": "eur"})
        fake, taker = await _play_a_lying_maker(own_mosquitto.url, proxy, a, b)
        try:
            # the taker's driver polls every half block: give it many polls to be fooled
            await asyncio.wait_for(proxy.lied.wait(), timeout=60)
            await asyncio.sleep(4)
            args: dict[str, Any] = {"sender": BOB.address, "hashlock": fake.terms.hashlock.hex()}
            assert await b.query("htlc", "lock_by_hashlock", args) is None  # bob locked nothing
            after = await b.query("bank", "balance", {"address": BOB.address, "denom": "eur"})
            assert after == before
            assert taker.poll() is None  # still waiting for a lock it can prove
        finally:
            taker.terminate()
            _, err = taker.communicate(timeout=30)
    assert "not proven" in err, err
