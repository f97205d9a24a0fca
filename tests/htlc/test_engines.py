"""An HTLC swap between a proof-of-stake chain and a proof-of-work chain, each with its
finality: both parties' drivers see a chain only up to its final height (its tip minus
its engine's ``finality_depth``, as the verifying subscriber yields blocks), and the
swap's safety rules take each chain's finality from its engine (``ChainParams``)."""

from __future__ import annotations

import asyncio
import hashlib

from chains.devnet import DEFAULT_BALANCE, build_devnet
from chains.engine import get_finality_depth
from chains.pos import devnet_pos_params
from chains.pow import devnet_pow_params
from chains.types import Block, Header
from htlc.driver import Party, SwapDriver
from htlc.store import MemorySwapStore
from htlc.swap import ChainParams, Role, Safety, SwapState, plan_swap
from tests.htlc.helpers import POLICY, ManualChain, Sim, secret_of

S, W = "chain-s", "chain-w"
GIVE, TAKE = 100, 90


class FinalView(ManualChain):
    """A chain as a follower that waits for finality sees it: blocks exist once they are
    ``depth`` deep."""

    def __init__(self, sim: Sim, depth: int) -> None:
        super().__init__(sim)
        self.depth = depth

    async def latest_height(self) -> int:
        return max(0, self.sim.height - self.depth)

    async def get_block(self, height: int) -> Block | None:
        return None if height > self.sim.height - self.depth else self.sim.blocks.get(height)

    async def get_header(self, height: int) -> Header | None:
        block = await self.get_block(height)
        return None if block is None else block.header


def event_height(sim: Sim, event_type: str, sender: str) -> int:
    """The height of the first ``event_type`` event naming ``sender`` as its sender or
    receiver."""
    for height in sorted(sim.blocks):
        for e in sim.blocks[height].events:
            if e.type == event_type and sender in (
                e.attributes.get("sender"),
                e.attributes.get("receiver"),
            ):
                return height
    raise AssertionError(f"no {event_type} by {sender}")


async def test_a_swap_between_a_pos_and_a_pow_chain_waits_for_each_finality() -> None:
    pos, pow_ = devnet_pos_params(finality_depth=3), devnet_pow_params(finality_depth=4)
    ds, dw = build_devnet((S, W), consensus={S: pos, W: pow_})
    A, B = Sim(ds), Sim(dw)
    safety = Safety(
        ChainParams(S, 1000, finality_depth=get_finality_depth(pos)),
        ChainParams(W, 1000, finality_depth=get_finality_depth(pow_)),
        POLICY,
    )
    alice = Party(A.key("alice"), B.key("alice"))  # initiator: gives on S, takes on W
    bob = Party(A.key("bob"), B.key("bob"))
    secret = secret_of(7)
    terms = plan_swap(
        safety,
        initiator_a=alice.key_a.address,
        participant_a=bob.key_a.address,
        participant_b=bob.key_b.address,
        initiator_b=alice.key_b.address,
        give=(A.dev.denom, GIVE),
        take=(B.dev.denom, TAKE),
        hashlock=hashlib.sha256(secret).digest(),
        height_a=A.height,
        height_b=B.height,
    )

    def driver(party: Party) -> SwapDriver:
        return SwapDriver(
            party,
            FinalView(A, pos.finality_depth),
            FinalView(B, pow_.finality_depth),
            MemorySwapStore(),
            safety,
        )

    ini, par = driver(alice), driver(bob)
    await ini.open(terms, Role.INITIATOR, secret)
    await par.open(terms, Role.PARTICIPANT)
    for _ in range(80):
        for d in (ini, par):
            await d.poll()
        await _blocks(A, B)
        if not ini.active() and not par.active():
            break
    assert ini.swaps[terms.swap_id].state is SwapState.REDEEMED
    assert par.swaps[terms.swap_id].state is SwapState.REDEEMED
    assert A.balance(alice.key_a) == DEFAULT_BALANCE - GIVE
    assert A.balance(bob.key_a) == DEFAULT_BALANCE + GIVE
    assert B.balance(alice.key_b) == DEFAULT_BALANCE + TAKE
    assert B.balance(bob.key_b) == DEFAULT_BALANCE - TAKE

    # nobody acted on a block that was not final: the chains advance in step, so each
    # leg's block is at least the other chain's finality depth after what it answered
    lock_s = event_height(A, "htlc.locked", alice.key_a.address)
    lock_w = event_height(B, "htlc.locked", bob.key_b.address)
    claim_w = event_height(B, "htlc.claimed", alice.key_b.address)
    claim_s = event_height(A, "htlc.claimed", bob.key_a.address)
    assert lock_w >= lock_s + pos.finality_depth
    assert claim_w >= lock_w + pow_.finality_depth
    assert claim_s >= claim_w + pow_.finality_depth


async def _blocks(a: Sim, b: Sim) -> None:
    for _ in range(3):
        await asyncio.sleep(0)
    a.produce()
    b.produce()
    for _ in range(3):
        await asyncio.sleep(0)
