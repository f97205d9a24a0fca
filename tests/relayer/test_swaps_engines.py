"""The daemon's swap watcher between a proof-of-work chain and a BFT chain (in process:
in-memory bus, in-process nodes): its finality comes from each chain's engine, the
relayer config may only raise it, and it acts only on final events.

chain-w is PoW, final ``DEPTH`` blocks deep; chain-b is BFT. The relayer config leaves
``finality_depth`` at its default (0) for both."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chains.crypto import PrivateKey
from chains.devnet import build_devnet
from chains.errors import InterlockError
from chains.handle import InProcessChain
from chains.node import Node
from chains.pow import devnet_pow_params
from chains.service.bus import MemoryBus
from chains.service.subscriber import VerifiedBlock
from chains.store import MemoryBlockStore
from chains.types import Receipt, Tx
from htlc import swap as verbs
from htlc.types import compute_hashlock
from htlc.watch import Watchtower
from relayer.config import parse_relayer_config
from relayer.daemon import Daemon
from relayer.metrics import Metrics
from relayer.store import RelayerStore
from relayer.submitter import Call
from relayer.swaps import SwapWorker
from tests.relayer.test_daemon import SEED, eventually, modules, publishing

W, B = "chain-w", "chain-b"
DEPTH = 4
ALICE, BOB = PrivateKey.derive(SEED, "alice"), PrivateKey.derive(SEED, "bob")


class Net:
    def __init__(self, tmp: Path) -> None:
        pow_ = devnet_pow_params(block_interval_ms=100, finality_depth=DEPTH)
        self.specs = {s.chain_id: s for s in build_devnet((W, B), seed=SEED, consensus={W: pow_})}
        self.denom = {cid: s.denom for cid, s in self.specs.items()}
        self.nodes = {
            cid: Node.open(
                s.genesis, modules, s.validator_keys, MemoryBlockStore(), block_interval=0.1
            )
            for cid, s in self.specs.items()
        }
        self.handles = {cid: InProcessChain(n) for cid, n in self.nodes.items()}
        self.bus = MemoryBus()
        self.tmp = tmp

    def settings(self, floor: int = 0) -> Any:
        return parse_relayer_config(
            {
                "relayer": {"data_dir": str(self.tmp / "relayer")},
                "api": {"port": 0},
                "chains": [
                    {"id": W, "rpc": ["http://127.0.0.1:1"], "finality_depth": floor},
                    {"id": B, "rpc": ["http://127.0.0.1:2"]},
                ],
                "paths": [{"src": W, "dst": B, "relay": ["swaps"]}],
            }
        )

    async def send(self, cid: str, tx: Tx) -> Receipt:
        receipt = await self.handles[cid].submit(tx)
        assert receipt.ok, receipt.error
        return receipt

    async def nonce(self, cid: str, key: PrivateKey) -> int:
        return await self.handles[cid].pending_nonce(key.address)

    async def reveal(self) -> tuple[bytes, Receipt]:
        """A fresh secret made public on chain-b: bob locks for alice, alice claims at
        once. The secret and alice's claim."""
        secret = os.urandom(32)
        terms, tx = verbs.participate(
            BOB, B, await self.nonce(B, BOB), receiver=ALICE.address, denom=self.denom[B],
            amount=5, hashlock=compute_hashlock(secret), timelock=10_000,
        )  # fmt: skip
        await self.send(B, tx)
        claim = verbs.redeem(ALICE, B, await self.nonce(B, ALICE), terms.lock_id, secret)
        return secret, await self.send(B, claim)

    async def lock_record(self, cid: str, lock_id: bytes) -> dict[str, Any]:
        got = await self.handles[cid].query("htlc", "lock", {"lock_id": lock_id.hex()})
        assert isinstance(got, dict)
        return got


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    n = Net(tmp_path)
    async with n.bus, n.nodes[W], n.nodes[B], publishing(n.bus, n.nodes.values()):
        yield n


async def test_finality_comes_from_the_engine_and_config_may_only_raise_it(
    net: Net, tmp_path: Path
) -> None:
    store = RelayerStore(tmp_path / "store")
    for floor, want in ((0, DEPTH), (DEPTH + 3, DEPTH + 3), (1, DEPTH)):
        worker = SwapWorker(net.handles, {}, store, Metrics(), min_finality={W: floor})
        await worker.resolve_path()
        assert worker.tower.finality == {W: want, B: 0}
    store.close()


async def test_the_watcher_claims_and_refunds_on_a_pow_chain_only_once_final(net: Net) -> None:
    daemon = Daemon(
        net.settings(),
        {cid: PrivateKey.derive(SEED, "relayer") for cid in (W, B)},
        handles=net.handles,
        bus=net.bus,
        idle_timeout=0.2,
    )
    task = asyncio.create_task(daemon.run())
    try:
        # a secret is public on chain-b first (bob's lock, claimed by alice at once) ...
        secret, _ = await net.reveal()
        # ... then alice locks on chain-w for bob with the same hashlock: the watcher
        # claims it for bob, but only once the lock's block is final
        top = net.nodes[W].height + 10_000
        made = verbs.initiate(
            ALICE, W, await net.nonce(W, ALICE), receiver=BOB.address, denom=net.denom[W],
            amount=7, timelock=top, secret=secret,
        )  # fmt: skip
        locked = await net.send(W, made.tx)
        # and a lock on chain-w that nobody claims, expiring soon: refunded once final
        expiry = net.nodes[W].height + 3
        lonely = verbs.initiate(
            ALICE, W, await net.nonce(W, ALICE), receiver=BOB.address, denom=net.denom[W],
            amount=3, timelock=expiry,
        )  # fmt: skip
        await net.send(W, lonely.tx)

        async def closed(lock_id: bytes) -> bool:
            return (await net.lock_record(W, lock_id))["status"] != "locked"

        await eventually(lambda: closed(made.terms.lock_id), "bob's claim on chain-w", 60)
        await eventually(lambda: closed(lonely.terms.lock_id), "alice's refund on chain-w", 60)
        claim = await net.lock_record(W, made.terms.lock_id)
        assert claim["status"] == "claimed"
        assert claim["closed"] >= locked.height + DEPTH  # seen only once final
        refund = await net.lock_record(W, lonely.terms.lock_id)
        assert refund["status"] == "refunded"
        assert refund["closed"] >= expiry + DEPTH  # the expiry was final first
        for method in ("claim", "refund"):
            done = daemon.metrics.registry.get_sample_value(
                "interlock_swap_actions_total", {"work": f"swap:{B}<->{W}", "method": method}
            )
            assert done == 1
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 30)


class Recorder:
    """A submitter that records the calls and sends nothing."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def submit(self, calls: list[Call]) -> list[InterlockError]:
        self.calls.extend(calls)
        return [InterlockError("not sent") for _ in calls]


def verified(node: Node, upto: int) -> list[VerifiedBlock]:
    out = []
    for h in range(1, upto + 1):
        block, vals = node.get_block(h), node.get_validators(h)
        assert block is not None
        assert vals is not None
        out.append(VerifiedBlock.of(block, vals))
    return out


async def test_a_claim_is_timed_by_the_chains_head_not_its_final_height(
    net: Net, tmp_path: Path
) -> None:
    """The watcher sees a PoW chain's blocks once final, ``DEPTH`` behind its head. A lock
    whose secret is known is claimed only while a claim sent at the head still lands
    below its timelock; judged by the final height, it would be sent too late."""
    secret, claimed = await net.reveal()
    timelock = net.nodes[W].height + DEPTH + 10
    made = verbs.initiate(
        ALICE, W, await net.nonce(W, ALICE), receiver=BOB.address, denom=net.denom[W],
        amount=7, timelock=timelock, secret=secret,
    )  # fmt: skip
    locked = await net.send(W, made.tx)
    b_blocks, w_blocks = (
        verified(net.nodes[B], claimed.height),
        verified(net.nodes[W], locked.height),
    )
    store = RelayerStore(tmp_path / "store")
    assert locked.height + DEPTH < timelock - 2  # at the lock's final height, a claim fits
    for head, sent in ((timelock - 1, False), (timelock - 2, True)):
        rec = Recorder()
        worker = SwapWorker(net.handles, {W: rec, B: rec}, store, Metrics())  # type: ignore[dict-item]
        worker.tower = Watchtower([B, W], finality={W: DEPTH})  # no snapshot between runs
        await worker.process(B, b_blocks, claimed.height)
        await worker.process(W, w_blocks, head)
        assert [(c.method, c.args["lock_id"]) for c in rec.calls] == (
            [("claim", made.terms.lock_id.hex())] if sent else []
        )
    store.close()
