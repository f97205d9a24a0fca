"""The daemon in process (in-memory bus, in-process chains): the pure pieces under it
working together. Process-level behaviour (kill -9, broker restarts) is in tests/e2e."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from bridge.module import BridgeModule
from chains.crypto import PrivateKey
from chains.devnet import base_modules, build_devnet
from chains.handle import InProcessChain
from chains.node import Node
from chains.service.bus import MemoryBus
from chains.service.publisher import Publisher
from chains.store import MemoryBlockStore
from chains.types import Tx
from htlc.module import HTLCModule
from relayer.config import parse_relayer_config
from relayer.connect import connect
from relayer.daemon import Daemon

SEED = "interlock-devnet"
A, B = "chain-a", "chain-b"
ALICE, BOB = PrivateKey.derive(SEED, "alice"), PrivateKey.derive(SEED, "bob")


def modules() -> list[Any]:
    return [*base_modules(), HTLCModule(), BridgeModule()]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, wait: float = 30) -> None:
    end = time.monotonic() + wait
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {wait} s: {what}")
        await asyncio.sleep(0.05)


class World:
    def __init__(self, tmp: Path) -> None:
        self.specs = {s.chain_id: s for s in build_devnet((A, B), seed=SEED)}
        # chain-a's node also holds four keys not in its genesis set: governance will
        # hand the whole set over to them (a churn no single skip can follow)
        self.extra = [PrivateKey.derive("extra-validator", str(i)) for i in range(4)]
        self.nodes = {
            A: Node.open(
                self.specs[A].genesis,
                modules,
                [*self.specs[A].validator_keys, *self.extra],
                MemoryBlockStore(),
                block_interval=0.05,
            ),
            B: Node.open(
                self.specs[B].genesis,
                modules,
                self.specs[B].validator_keys,
                MemoryBlockStore(),
                block_interval=0.05,
            ),
        }
        self.handles = {cid: InProcessChain(n) for cid, n in self.nodes.items()}
        self.bus = MemoryBus()
        self.settings = parse_relayer_config(
            {
                "relayer": {"data_dir": str(tmp / "relayer")},
                "api": {"port": 0},
                "chains": [
                    {"id": A, "rpc": ["http://127.0.0.1:1"], "key": "devnet:relayer"},
                    {"id": B, "rpc": ["http://127.0.0.1:2"], "key": "devnet:relayer"},
                ],
                "paths": [
                    {"src": A, "dst": B, "relay": ["transfers"]},
                    {"src": B, "dst": A, "relay": ["transfers"]},
                ],
            }
        )
        self.relayer = PrivateKey.derive(SEED, "relayer")

    async def send(self, cid: str, key: PrivateKey, module: str, method: str, args: Any) -> Any:
        h = self.handles[cid]
        nonce = await h.pending_nonce(key.address)
        receipt = await h.submit(Tx.create(key, cid, nonce, module, method, args))
        assert receipt.ok, receipt.error
        return receipt

    def start_daemon(self) -> tuple[Daemon, asyncio.Task[None]]:
        keys = {cid: self.relayer for cid in (A, B)}
        daemon = Daemon(self.settings, keys, handles=self.handles, bus=self.bus, idle_timeout=0.2)
        return daemon, asyncio.create_task(daemon.run())

    async def lock(self, amount: int = 10) -> Any:
        """alice locks ``amount`` usd on chain-a for bob on chain-b; the receipt."""
        args = {"denom": "usd", "amount": amount, "dest_chain": B, "recipient": BOB.address}
        return await self.send(A, ALICE, "bridge", "lock", args)

    async def received(self, nonce: int) -> bool:
        got = await self.handles[B].query("bridge", "received", {"remote_chain": A, "nonce": nonce})
        return got is not None


async def _at_least(node: Node, height: int) -> bool:
    return node.height >= height


@contextlib.asynccontextmanager
async def publishing(bus: MemoryBus, nodes: Iterable[Node]) -> AsyncIterator[None]:
    """Every node's blocks onto ``bus`` (each node producing, at block 1 or later)."""
    nodes = list(nodes)
    pubs = [asyncio.create_task(Publisher(n, bus).run()) for n in nodes]
    try:
        for n in nodes:
            await eventually(lambda n=n: _at_least(n, 1), "block 1")
        yield
    finally:
        for p in pubs:
            p.cancel()
        await asyncio.gather(*pubs, return_exceptions=True)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = World(tmp_path)
    async with w.bus, w.nodes[A], w.nodes[B], publishing(w.bus, w.nodes.values()):
        for src, dst in ((A, B), (B, A)):
            gov = PrivateKey.derive(SEED, dst, "gov")
            await connect(w.handles[src], w.handles[dst], w.relayer, gov)
        yield w


async def test_relays_across_a_complete_validator_set_change(world: World) -> None:
    w = world
    daemon, run = w.start_daemon()
    try:
        r = await w.lock()
        first = int(r.events[-1].attributes["nonce"])
        await eventually(lambda: w.received(first), "first mint")
        # governance of chain-a replaces its whole validator set, one change per block
        gov = PrivateKey.derive(SEED, A, "gov")
        for k in w.extra:
            await w.send(
                A, gov, "validators", "set_power", {"public_key": k.public_key.hex(), "power": 100}
            )
        for k in w.specs[A].validator_keys:
            await w.send(
                A, gov, "validators", "set_power", {"public_key": k.public_key.hex(), "power": 0}
            )
        r = await w.lock()
        second = int(r.events[-1].attributes["nonce"])
        await eventually(lambda: w.received(second), "mint after the set changed")
        bal = await w.handles[B].query(
            "bank", "balance", {"address": BOB.address, "denom": "chain-a/usd"}
        )
        assert bal == 20

        async def relayed_two() -> bool:  # the chain commits before the daemon hears back
            work = {s["name"]: s for s in daemon.status()["work"]}
            return bool(work["transfer:chain-a->chain-b"]["relayed"] == 2)

        await eventually(relayed_two, "the daemon counting both")
        # no single skip can follow a set that changed completely: the planner bisected
        sent = daemon.metrics.registry.get_sample_value(
            "interlock_headers_submitted_total", {"work": "transfer:chain-a->chain-b"}
        )
        assert sent is not None
        assert sent >= 3
    finally:
        daemon.stop()
        await asyncio.wait_for(run, 30)


async def test_the_console_dates_header_relayed_by_the_destination_commit(world: World) -> None:
    """The feed's ``header relayed`` is the time of chain-b's block that committed the
    client update for the lock's height, not when the relayer sent it; the mint carries
    its transaction's hash."""
    w = world
    daemon, run = w.start_daemon()
    try:
        r = await w.lock()
        nonce = int(r.events[-1].attributes["nonce"])
        key = f"transfer:{A}->{B}#{nonce}"

        async def minted() -> bool:
            return any(i["id"] == key and i["state"] == "minted" for i in daemon.feed.items())

        await eventually(minted, "minted in the feed")
        [item] = [i for i in daemon.feed.items() if i["id"] == key]
        when = {h["state"]: h["t"] for h in item["history"]}  # type: ignore[union-attr]
        # the block of chain-b whose client update took chain-a's lock height
        node = w.nodes[B]
        commit = next(
            b
            for b in map(node.get_block, range(1, node.height + 1))
            if b is not None
            and any(
                e.type == "lightclient.client_updated" and e.attributes["height"] == r.height
                for e in b.events
            )
        )
        assert when["header relayed"] == round(commit.header.time / 1000, 3)
        assert when["locked"] <= when["header relayed"] <= when["minted"]
        tx = bytes.fromhex(str(item["mint_tx"]))
        receipt = node.get_receipt(tx)
        assert receipt is not None
        assert any(e.type == "bridge.minted" for e in receipt.events)
    finally:
        daemon.stop()
        await asyncio.wait_for(run, 30)


async def test_a_conflicting_header_freezes_the_client_and_is_reported(world: World) -> None:
    """Chain-a's validators (keys a test holds: a devnet) sign a second header for a height
    that has a transfer; someone gives it to chain-b's client first. The daemon, comparing
    with chain-a's own header, submits the real one: two valid commits for one height
    freeze the client, and the daemon says so."""
    import dataclasses
    import os

    from chains.consensus import sign_commit
    from chains.lightclient import HeaderUpdate

    w = world
    r = await w.lock()
    real = w.nodes[A].get_block(r.height)
    assert real is not None
    forged = dataclasses.replace(real.header, state_root=os.urandom(32))
    commit = sign_commit(forged, w.specs[A].validator_keys)
    path = await w.handles[B].query("bridge", "path", {"remote_chain": A})
    client_id = path["client_id"]  # type: ignore[index]
    client = await w.handles[B].query("lightclient", "client", {"client_id": client_id})
    trusted = int(client["latest_height"])  # type: ignore[index]
    vals = w.nodes[A].get_validators(r.height)
    assert vals is not None
    update = HeaderUpdate(forged, commit, vals, trusted, vals)
    args = {"client_id": client_id, "update": update.to_json()}
    await w.send(B, PrivateKey.derive(SEED, "carol"), "lightclient", "update_client", args)

    keys = {cid: w.relayer for cid in (A, B)}
    daemon = Daemon(w.settings, keys, handles=w.handles, bus=w.bus, idle_timeout=0.2)
    run = asyncio.create_task(daemon.run())
    try:

        async def frozen() -> bool:
            got = await w.handles[B].query("lightclient", "client", {"client_id": client_id})
            return bool(got["frozen_height"])  # type: ignore[index]

        await eventually(frozen, "the client frozen by the real header")
        work = {s["name"]: s for s in daemon.status()["work"]}
        assert "MISBEHAVIOUR" in work["transfer:chain-a->chain-b"]["misbehaviour"]
        seen = daemon.metrics.registry.get_sample_value(
            "interlock_misbehaviour_total", {"work": "transfer:chain-a->chain-b"}
        )
        assert seen == 1
        assert not await w.received(int(r.events[-1].attributes["nonce"]))  # nothing minted
    finally:
        daemon.stop()
        await asyncio.wait_for(run, 30)


async def test_the_api_answers_json_and_refuses_bad_http(world: World) -> None:
    import aiohttp

    w = world
    keys = {cid: w.relayer for cid in (A, B)}
    daemon = Daemon(w.settings, keys, handles=w.handles, bus=w.bus, idle_timeout=0.2)
    run = asyncio.create_task(daemon.run())
    try:
        await eventually(lambda: _true(daemon.api_port is not None), "the API")
        base = f"http://127.0.0.1:{daemon.api_port}"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/healthz") as r:
                assert r.status == 200
                assert (await r.json())["ok"] is True
            async with s.get(f"{base}/status") as r:
                body = await r.json()
                assert {x["name"] for x in body["work"]} == {
                    "transfer:chain-a->chain-b",
                    "transfer:chain-b->chain-a",
                }
            async with s.get(f"{base}/nope") as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "not_found"
            async with s.post(f"{base}/status") as r:
                assert r.status == 405
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.api_port)
        writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
        assert answer.split(b" ", 2)[1] == b"400"
        assert b'"code":"bad_request"' in answer
        assert b"-5" not in answer.split(b"\r\n\r\n", 1)[1]  # never echoes the input
    finally:
        daemon.stop()
        await asyncio.wait_for(run, 30)


async def _true(value: bool) -> bool:
    return value
