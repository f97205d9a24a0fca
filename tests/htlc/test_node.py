"""The driver against real nodes producing blocks on their own (asyncio, in process)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from chains.bank import get_balance
from chains.devnet import DEFAULT_BALANCE
from chains.handle import InProcessChain
from chains.node import Node, SQLiteBlockStore
from chains.store import MemoryBlockStore
from htlc.driver import Party, SwapDriver
from htlc.module import ESCROW
from htlc.swap import ChainParams, Role, Safety, SafetyPolicy, SwapState, plan_swap
from interlock.swap_store import SQLiteSwapStore
from tests.htlc.helpers import devnet, htlc_modules, secret_of

INTERVAL_MS = 20
# generous margins: on a loaded machine blocks and polls may be late; the swap needs only a
# handful of blocks, the timelocks give it hundreds
POLICY = SafetyPolicy(reaction_ms=2_000, min_delta_ms=2_000)


async def idle() -> None:
    await asyncio.sleep(INTERVAL_MS / 2000)


async def test_swaps_complete_between_two_running_nodes(tmp_path: Path) -> None:
    da, db = devnet(2)
    node_a = Node.open(
        da.genesis,
        htlc_modules,
        da.validator_keys,
        MemoryBlockStore(),
        block_interval=INTERVAL_MS / 1000,
    )
    node_b = Node.open(
        db.genesis,
        htlc_modules,
        db.validator_keys,
        SQLiteBlockStore(tmp_path / "b.db"),
        block_interval=INTERVAL_MS / 1000,
    )
    safety = Safety(
        ChainParams(da.chain_id, INTERVAL_MS, 0, 500),
        ChainParams(db.chain_id, INTERVAL_MS, 0, 500),
        POLICY,
    )
    alice = Party(da.accounts["alice"], db.accounts["alice"])
    bob = Party(da.accounts["bob"], db.accounts["bob"])
    async with node_a, node_b:
        a, b = InProcessChain(node_a), InProcessChain(node_b)
        ini = SwapDriver(
            alice, a, b, SQLiteSwapStore(tmp_path / "alice.db", key=alice.key_a), safety
        )
        par = SwapDriver(bob, a, b, SQLiteSwapStore(tmp_path / "bob.db", key=bob.key_a), safety)
        n = 5
        for i in range(n):
            terms = plan_swap(
                safety,
                initiator_a=alice.key_a.address,
                participant_a=bob.key_a.address,
                participant_b=bob.key_b.address,
                initiator_b=alice.key_b.address,
                give=(da.denom, 10),
                take=(db.denom, 7),
                hashlock=hashlib.sha256(secret_of(i)).digest(),
                height_a=node_a.height,
                height_b=node_b.height,
            )
            await ini.open(terms, Role.INITIATOR, secret_of(i))
            await par.open(terms, Role.PARTICIPANT)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(ini.run(idle), name="driver:alice")
            tg.create_task(par.run(idle), name="driver:bob")
        await ini.drain()
        await par.drain()
        states = {s.state for d in (ini, par) for s in d.swaps.values()}
        assert states == {SwapState.REDEEMED}
        ca, cb = node_a.chain, node_b.chain
        assert get_balance(ca.state, alice.key_a.address, da.denom) == DEFAULT_BALANCE - 10 * n
        assert get_balance(cb.state, alice.key_b.address, db.denom) == DEFAULT_BALANCE + 7 * n
        assert get_balance(ca.state, ESCROW, da.denom) == 0
        assert get_balance(cb.state, ESCROW, db.denom) == 0
        ini.store.close()
        par.store.close()
