"""Several drivers signing with one key (a market maker's swaps), against real nodes whose
blocks the test produces, so that "in the same block" is exact.

Each swap has its own driver (its own store), all signing with the maker's key. The
maker's locks are all due at once (every driver opens before the next block), and so are
its claims (the taker locks every counter leg in one block).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
from collections import Counter

import pytest

from chains.bank import get_balance
from chains.devnet import DEFAULT_BALANCE
from chains.errors import BadNonce, TxRejected
from chains.handle import InProcessChain
from chains.node import Node
from chains.store import MemoryBlockStore
from chains.types import Receipt, Tx
from htlc.driver import NonceSequence, Party, SwapDriver
from htlc.errors import InsufficientTime
from htlc.module import ESCROW
from htlc.store import MemorySwapStore
from htlc.swap import ChainParams, Role, Safety, SafetyPolicy, SwapState, plan_swap
from tests.htlc.helpers import devnet, htlc_modules, secret_of

N = 5
GIVE, TAKE = 10, 7
# the driver judges with the engine's default reaction time; the plan leaves this much more
# (as the daemon's maker does): here 3 blocks of slack for a lock sent late
DRIVE = SafetyPolicy(reaction_ms=2_000, min_delta_ms=2_000)
PLAN = dataclasses.replace(DRIVE, reaction_ms=3_000)


class RecordingChain(InProcessChain):
    """An in-process handle that records what the node refused and, like a handle over
    the network, lets other tasks run while it reads a nonce."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.refused: list[TxRejected] = []
        self.receipts: list[Receipt] = []

    async def pending_nonce(self, address: str) -> int:
        await asyncio.sleep(0)  # a round trip: others may read meanwhile
        return await super().pending_nonce(address)

    async def submit(self, tx: Tx) -> Receipt:
        try:
            receipt = await super().submit(tx)
        except TxRejected as exc:
            self.refused.append(exc)
            raise
        self.receipts.append(receipt)
        return receipt


@dataclasses.dataclass
class Market:
    node_a: Node
    node_b: Node
    a: RecordingChain
    b: RecordingChain
    maker: Party
    taker: Party
    safety: Safety
    denoms: tuple[str, str]


def market() -> Market:
    da, db = devnet(2)
    node_a = Node.open(da.genesis, htlc_modules, da.validator_keys, MemoryBlockStore())
    node_b = Node.open(db.genesis, htlc_modules, db.validator_keys, MemoryBlockStore())
    safety = Safety(
        ChainParams(da.chain_id, 1000, 0, 100), ChainParams(db.chain_id, 1000, 0, 100), DRIVE
    )
    return Market(
        node_a, node_b, RecordingChain(node_a), RecordingChain(node_b),
        Party(da.accounts["alice"], db.accounts["alice"]),
        Party(da.accounts["bob"], db.accounts["bob"]),
        safety, (da.denom, db.denom),
    )  # fmt: skip


async def settle() -> None:
    """Let every submission handed over be admitted (or refused) and its task see it."""
    for _ in range(20):
        await asyncio.sleep(0)


async def run_market(m: Market, *, shared: bool) -> tuple[list[SwapDriver], SwapDriver]:
    """N maker swaps, one driver each (a shared nonce sequence per chain, or each its own),
    one taker driver for all; one block on each chain per round until all end."""
    nonces = None
    if shared:
        nonces = {c.chain_id: NonceSequence(c, m.maker.key_a) for c in (m.a, m.b)}
    makers = [
        SwapDriver(m.maker, m.a, m.b, MemorySwapStore(), m.safety, nonces=nonces) for _ in range(N)
    ]
    taker = SwapDriver(m.taker, m.a, m.b, MemorySwapStore(), m.safety)
    plan = dataclasses.replace(m.safety, policy=PLAN)
    swaps = [
        plan_swap(
            plan,
            initiator_a=m.maker.key_a.address,
            participant_a=m.taker.key_a.address,
            participant_b=m.taker.key_b.address,
            initiator_b=m.maker.key_b.address,
            give=(m.denoms[0], GIVE),
            take=(m.denoms[1], TAKE),
            hashlock=hashlib.sha256(secret_of(i)).digest(),
            height_a=m.node_a.height,
            height_b=m.node_b.height,
        )
        for i in range(N)
    ]
    # every maker lock is due at once, before the next block (takers accepting together)
    await asyncio.gather(
        *(makers[i].open(terms, Role.INITIATOR, secret_of(i)) for i, terms in enumerate(swaps))
    )
    for terms in swaps:
        await taker.open(terms, Role.PARTICIPANT)
    for _ in range(400):
        await settle()
        m.node_a.produce_block()
        m.node_b.produce_block()
        await settle()
        # each driver is its own task in the daemon: their polls interleave
        await asyncio.gather(*(d.poll() for d in (*makers, taker)))
        if not any(d.active() for d in (*makers, taker)):
            break
    for d in (*makers, taker):
        await d.drain()
    return makers, taker


def events_by_height(node: Node, kind: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in range(1, node.height + 1):
        block = node.get_block(h)
        n = 0 if block is None else sum(1 for e in block.events if e.type == kind)
        if n:
            out[h] = n
    return out


def maker_states(makers: list[SwapDriver]) -> Counter[str]:
    return Counter(s.state.value for d in makers for s in d.swaps.values())


async def test_separate_nonce_counts_collide_and_delay_the_later_swaps() -> None:
    """Why the maker must share: drivers that each read the key's count, their reads
    interleaved, number their locks the same; the node admits one and refuses the rest
    (BadNonce). Each refused lock is re-sent a poll later, into the same race, so about one
    gets in per block, and one re-sent once the plan's slack is used up is refused by the
    driver's own margin check and never sent: that swap aborts (nothing is lost: no lock
    of the maker's, the taker never locks)."""
    m = market()
    makers, _ = await run_market(m, shared=False)
    assert len(m.a.refused) >= N - 1
    assert {e.code for e in m.a.refused} == {"bad_nonce"}
    counted = sum((d.nonces[m.a.chain_id].failures for d in makers), Counter[str]())
    assert counted == Counter({"bad_nonce": len(m.a.refused)})  # each driver counts its own
    assert len(events_by_height(m.node_a, "htlc.locked")) > 1  # spread over blocks
    late = [e for d in makers for _, e in d.rejected]
    assert late
    assert all(isinstance(e, InsufficientTime) for e in late)
    states = maker_states(makers)
    assert states["aborted"] == len(late), states
    assert states["redeemed"] == N - len(late), states


async def test_a_shared_nonce_sequence_runs_every_swap_with_nothing_refused() -> None:
    m = market()
    makers, taker = await run_market(m, shared=True)
    assert maker_states(makers) == Counter({"redeemed": N})
    assert {s.state for s in taker.swaps.values()} == {SwapState.REDEEMED}
    assert m.a.refused == []
    assert m.b.refused == []
    assert all(not seq.failures for seq in makers[0].nonces.values())
    assert all(r.ok for r in (*m.a.receipts, *m.b.receipts))
    # the maker's locks all went into the first block, its claims all into one block
    assert events_by_height(m.node_a, "htlc.locked") == {1: N}
    assert list(events_by_height(m.node_b, "htlc.claimed").values()) == [N]
    ca, cb = m.node_a.chain.state, m.node_b.chain.state
    (da, db), maker, taker_key = m.denoms, m.maker.key_a.address, m.taker.key_a.address
    assert get_balance(ca, maker, da) == DEFAULT_BALANCE - GIVE * N
    assert get_balance(ca, taker_key, da) == DEFAULT_BALANCE + GIVE * N
    assert get_balance(cb, maker, db) == DEFAULT_BALANCE + TAKE * N
    assert get_balance(cb, taker_key, db) == DEFAULT_BALANCE - TAKE * N
    assert get_balance(ca, ESCROW, da) == 0
    assert get_balance(cb, ESCROW, db) == 0


def a_transfer(m: Market, nonce: int, amount: int = 1) -> Tx:
    args = {"to": m.taker.key_a.address, "denom": m.denoms[0], "amount": amount}
    return Tx.create(m.maker.key_a, m.a.chain_id, nonce, "bank", "transfer", args)


async def test_a_refusal_renumbers_once_from_the_pending_count() -> None:
    """Another user of the key takes the next two numbers: the two transactions the
    sequence numbers next are refused, it renumbers once (from the node's pending count,
    which counts every admitted one), and the next is admitted."""
    m = market()
    seen: list[str] = []
    seq = NonceSequence(m.a, m.maker.key_a, on_failure=seen.append)
    first, epoch = await seq.send(functools.partial(a_transfer, m))
    other = [a_transfer(m, n, amount=2) for n in (1, 2)]  # not through the sequence
    assert await m.a.submit_batch(other) == [t.hash for t in other]
    late = [await seq.send(functools.partial(a_transfer, m)) for _ in range(2)]
    for fut, e in late:
        with pytest.raises(BadNonce):
            await fut
        seq.reset(e, "bad_nonce")
    assert [e for _, e in late] == [epoch, epoch]
    fut, after = await seq.send(functools.partial(a_transfer, m))
    assert after == epoch + 1
    m.node_a.produce_block()
    assert (await first).ok
    assert (await fut).ok
    assert await m.a.next_nonce(m.maker.key_a.address) == 4  # first, the other two, the last
    assert seen == ["bad_nonce", "bad_nonce"]
    assert seq.failures == Counter({"bad_nonce": 2})
