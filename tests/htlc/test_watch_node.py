"""The watchtower against two real nodes producing blocks on their own: a third key, no
party's, submits what the tower says, and the chains accept it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

from chains.bank import get_balance
from chains.crypto import PrivateKey
from chains.handle import InProcessChain
from chains.node import Node
from chains.store import MemoryBlockStore
from chains.types import Receipt, Tx
from htlc.module import ESCROW
from htlc.types import LockTerms
from htlc.watch import Watchtower
from tests.htlc.helpers import devnet, htlc_modules, secret_of

INTERVAL = 0.02


async def relay(
    tower: Watchtower,
    chains: dict[str, InProcessChain],
    keys: dict[str, PrivateKey],
    done: Callable[[], bool],
) -> list[tuple[str, Receipt]]:
    """A minimal relayer: feed every new block, submit each action once, until ``done``."""
    sent: set[tuple[str, str]] = set()
    receipts: list[tuple[str, Receipt]] = []
    while not done():
        heights: dict[str, int] = {}
        for chain_id, chain in chains.items():
            tip = await chain.latest_height()
            for height in range((tower.cursor(chain_id) or 0) + 1, tip + 1):
                block = await chain.get_block(height)
                assert block is not None
                tower.observe(chain_id, height, block.events)
            heights[chain_id] = tip
        for action in tower.actions(heights):
            if (action.chain_id, action.lock_id) in sent:
                continue  # in flight, or done: its closing event will show
            sent.add((action.chain_id, action.lock_id))
            chain, key = chains[action.chain_id], keys[action.chain_id]
            tx = action.build_tx(key, await chain.pending_nonce(key.address))
            receipt = await chain.submit(tx)
            receipts.append((action.method, receipt))
            if receipt.ok:
                tower.settled(action.chain_id, action.lock_id)
        await asyncio.sleep(INTERVAL / 2)
    return receipts


async def test_watchtower_finishes_and_refunds_swaps_between_running_nodes() -> None:
    da, db = devnet(2)
    node_a = Node.open(
        da.genesis, htlc_modules, da.validator_keys, MemoryBlockStore(), block_interval=INTERVAL
    )
    node_b = Node.open(
        db.genesis, htlc_modules, db.validator_keys, MemoryBlockStore(), block_interval=INTERVAL
    )
    alice_a, bob_a = da.accounts["alice"], da.accounts["bob"]
    alice_b, bob_b = db.accounts["alice"], db.accounts["bob"]
    relayer = {da.chain_id: da.accounts["carol"], db.chain_id: db.accounts["carol"]}
    async with node_a, node_b:
        a, b = InProcessChain(node_a), InProcessChain(node_b)

        async def call(
            chain: InProcessChain, key: PrivateKey, method: str, args: dict[str, Any]
        ) -> None:
            nonce = await chain.pending_nonce(key.address)
            receipt = await chain.submit(
                Tx.create(key, chain.chain_id, nonce, "htlc", method, args)
            )
            assert receipt.ok, receipt.error

        # swap 1: both lock, Alice claims on B (revealing the secret), Bob stays offline
        secret = secret_of(1)
        hashlock = hashlib.sha256(secret).digest()
        on_a = LockTerms(
            da.chain_id, alice_a.address, bob_a.address, da.denom, 10, hashlock, node_a.height + 500
        )
        await call(a, alice_a, "lock", on_a.lock_args())
        on_b = LockTerms(
            db.chain_id, bob_b.address, alice_b.address, db.denom, 7, hashlock, node_b.height + 250
        )
        await call(b, bob_b, "lock", on_b.lock_args())
        await call(b, alice_b, "claim", {"lock_id": on_b.lock_id.hex(), "preimage": secret.hex()})
        # swap 2: both lock with short timelocks and nobody ever reveals
        hashlock2 = hashlib.sha256(secret_of(2)).digest()
        short_a = LockTerms(
            da.chain_id, alice_a.address, bob_a.address, da.denom, 3, hashlock2, node_a.height + 8
        )
        await call(a, alice_a, "lock", short_a.lock_args())
        short_b = LockTerms(
            db.chain_id, bob_b.address, alice_b.address, db.denom, 2, hashlock2, node_b.height + 6
        )
        await call(b, bob_b, "lock", short_b.lock_args())

        bob_before = get_balance(node_a.chain.state, bob_a.address, da.denom)
        tower = Watchtower((da.chain_id, db.chain_id))
        async with asyncio.timeout(60):
            receipts = await relay(
                tower,
                {da.chain_id: a, db.chain_id: b},
                relayer,
                lambda: tower.cursor(da.chain_id) is not None and tower.open_locks == 0,
            )

        assert sorted(m for m, r in receipts if r.ok) == ["claim", "refund", "refund"]
        assert all(r.ok for _, r in receipts), [r.error for _, r in receipts]
        assert get_balance(node_a.chain.state, bob_a.address, da.denom) == bob_before + 10
        assert get_balance(node_a.chain.state, ESCROW, da.denom) == 0
        assert get_balance(node_b.chain.state, ESCROW, db.denom) == 0
        statuses = {
            t.lock_id.hex(): n.chain.query("htlc", "lock", {"lock_id": t.lock_id.hex()})["status"]
            for t, n in ((on_a, node_a), (short_a, node_a), (short_b, node_b))
        }
        assert statuses == {
            on_a.lock_id.hex(): "claimed",
            short_a.lock_id.hex(): "refunded",
            short_b.lock_id.hex(): "refunded",
        }
        assert tower.counts["malformed"] == tower.counts["bad_preimage"] == 0
