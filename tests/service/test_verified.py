"""The client-side verified reader: headers believed only as far as they verify from the
anchor, events only as far as they prove against such a header, and a bounded amount of
work per call. Blocks are produced by hand, the endpoint is an in-memory twin of the RPC
(lying subclasses change one answer each)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from chains.devnet import build_devnet
from chains.handle import InProcessChain
from chains.node import Node
from chains.pow import devnet_pow_params
from chains.service.verified import (
    AnchorMismatch,
    Checkpoint,
    TrustAnchor,
    TrustExpired,
    UnverifiedEvent,
    UnverifiedHeader,
    VerifiedReader,
    VerifyBudgetExceeded,
)
from chains.types import Commit, Event, EventProof, Header, ValidatorSet
from tests.conftest import open_node
from tests.service import test_subscriber
from tests.service.test_subscriber import Chain


class Endpoint(InProcessChain):
    """What an honest RPC answers, from a node in this process (``get_header`` counted)."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.reads = 0

    async def get_header(self, height: int) -> Header | None:
        self.reads += 1
        return await super().get_header(height)

    async def get_commit(self, height: int) -> Commit | None:
        block = self.node.get_block(height)
        return None if block is None else block.commit

    async def search_events(
        self,
        types: Sequence[str],
        attr: tuple[str, str] | None = None,
        *,
        limit: int = 20,
        before: str | None = None,
    ) -> tuple[list[tuple[int, int, Event]], str | None]:
        out = []
        for h in range(self.node.height, 0, -1):
            block = self.node.get_block(h)
            assert block is not None
            for i, e in reversed(list(enumerate(block.events))):
                if e.type in types and (attr is None or str(e.attributes.get(attr[0])) == attr[1]):
                    out.append((h, i, e))
        return out[:limit], None


chain = test_subscriber.chain  # the fixture: a BFT node driven by hand


def genesis_anchor(chain: Chain) -> TrustAnchor:
    return TrustAnchor.of_genesis(chain.dc.genesis, "the test's genesis")


def reader(chain: Chain, endpoint: Endpoint | None = None, **options: Any) -> VerifiedReader:
    ep = endpoint or Endpoint(chain.node)
    return VerifiedReader(ep, genesis_anchor(chain), **options)


# --- what verifies --------------------------------------------------------------------


async def test_a_header_far_from_the_anchor_verifies_by_skipping(chain: Chain) -> None:
    blocks = chain.blocks(40, txs=1)
    ep = Endpoint(chain.node)
    saved: list[Checkpoint] = []
    r = reader(chain, ep, on_checkpoint=saved.append)
    assert await r.verified_header(35) == blocks[34].header
    # block 1 from the genesis set, then one skip to 35: not 35 sequential headers
    assert ep.reads == 2
    assert [c.height for c in saved] == [1, 35]
    assert await r.verified_header(35) == blocks[34].header  # cached: no read
    assert ep.reads == 2


async def test_an_event_proves_against_the_verified_header(chain: Chain) -> None:
    blocks = chain.blocks(6, txs=3)
    r = reader(chain)
    event = await r.prove_event(4, 2)
    assert event == blocks[3].events[2]
    bob = chain.dc.accounts["bob"].address
    [found] = await r.find_proven(["bank.transfer"], ("to", bob), limit=1)
    assert (found.height, found.event) == (6, blocks[5].events[2])
    assert found.header == blocks[5].header


async def test_below_a_trusted_header_the_hash_chain_verifies(chain: Chain) -> None:
    blocks = chain.blocks(12)
    r = reader(chain)
    await r.verified_header(12)
    ep = Endpoint(chain.node)
    r2 = VerifiedReader(ep, genesis_anchor(chain), checkpoint=r.latest_checkpoint)
    assert await r2.verified_header(9) == blocks[8].header
    assert ep.reads == 3  # 11, 10, 9: down from the checkpoint's header


async def test_a_pinned_header_is_an_anchor_and_a_cached_checkpoint_resumes(chain: Chain) -> None:
    blocks = chain.blocks(20)
    pin = blocks[9].header
    anchor = TrustAnchor("chain-a", "--trust", height=10, header_hash=pin.hash)
    r = VerifiedReader(Endpoint(chain.node), anchor)
    assert await r.verified_header(18) == blocks[17].header
    assert await r.verified_header(4) == blocks[3].header  # below the pin: hash chain
    cp = r.latest_checkpoint
    assert cp is not None
    assert cp.height == 18
    again = VerifiedReader(
        Endpoint(chain.node),
        anchor,
        checkpoint=Checkpoint.from_json(cp.to_json()),
    )
    assert await again.verified_header(18) == blocks[17].header


# --- what does not ----------------------------------------------------------------------


class ForgedHeader(Endpoint):
    """Serves block ``at`` with another event root, under the real commit."""

    at = 8

    async def get_header(self, height: int) -> Header | None:
        h = await super().get_header(height)
        if h is not None and height == self.at:
            return dataclasses.replace(h, event_root=b"\x11" * 32)
        return h


async def test_a_forged_header_is_refused(chain: Chain) -> None:
    chain.blocks(10)
    r = reader(chain, ForgedHeader(chain.node))
    with pytest.raises(UnverifiedHeader, match=r"chain-a: cannot verify header 8"):
        await r.verified_header(8)
    assert 8 not in r._verified


class OtherValidators(Endpoint):
    """Serves, from ``at`` on, headers of a chain-a run by other validators."""

    def __init__(self, node: Node, fake: Node, at: int) -> None:
        super().__init__(node)
        self.fake, self.at = fake, at

    def _node(self, height: int) -> Node:
        return self.fake if height >= self.at else self.node

    async def latest_height(self) -> int:
        return self.fake.height

    async def get_header(self, height: int) -> Header | None:
        block = self._node(height).get_block(height)
        return None if block is None else block.header

    async def get_commit(self, height: int) -> Commit | None:
        block = self._node(height).get_block(height)
        return None if block is None else block.commit

    async def get_validators(self, height: int) -> ValidatorSet | None:
        return self._node(height).get_validators(height)


@pytest.fixture
def attacker(tmp_path: Path) -> Iterator[Chain]:
    [dc] = build_devnet(["chain-a"], seed="attacker")  # same chain id, other keys
    node = open_node(dc, tmp_path / "attacker")
    yield Chain(dc, node)
    node.store.close()


async def test_headers_of_a_set_not_linked_to_the_anchor_are_refused(
    chain: Chain, attacker: Chain
) -> None:
    blocks = chain.blocks(6)
    attacker.blocks(20)
    # from the genesis: block 1 of the attacker's chain does not follow it
    r = reader(chain, OtherValidators(chain.node, attacker.node, at=1))
    with pytest.raises(AnchorMismatch, match="block 1"):
        await r.verified_header(15)
    # from a pinned header: the skip lacks trust, bisection reaches an adjacent header
    # signed by a set the trusted header never named
    pin = blocks[4].header
    anchor = TrustAnchor("chain-a", "--trust", height=5, header_hash=pin.hash)
    r = VerifiedReader(OtherValidators(chain.node, attacker.node, at=6), anchor)
    with pytest.raises(UnverifiedHeader, match="header 15"):
        await r.verified_header(15)
    assert r.latest_checkpoint is not None
    assert r.latest_checkpoint.height == 5


class WrongProof(Endpoint):
    """Answers the proof of another event of the block (or a doctored event)."""

    async def get_event_proof(self, height: int, index: int) -> EventProof | None:
        p = await super().get_event_proof(height, index)
        assert p is not None
        other = Event(p.event.type, {**p.event.attributes, "amount": 1_000_000})
        return dataclasses.replace(p, event=other)


async def test_an_event_whose_proof_does_not_match_is_refused(chain: Chain) -> None:
    chain.blocks(3, txs=2)
    r = reader(chain, WrongProof(chain.node))
    with pytest.raises(UnverifiedEvent, match=r"event 1 at height 2.*event_root"):
        await r.prove_event(2, 1)


class MadeUpIndex(Endpoint):
    """The index names an event the block does not hold (the proof is the block's)."""

    async def search_events(
        self,
        types: Sequence[str],
        attr: tuple[str, str] | None = None,
        *,
        limit: int = 20,
        before: str | None = None,
    ) -> tuple[list[tuple[int, int, Event]], str | None]:
        found, nxt = await super().search_events(types, attr, limit=limit)
        return [(h, i, Event(e.type, {**e.attributes, "to": "ff" * 20})) for h, i, e in found], nxt


async def test_an_index_answer_that_is_not_the_blocks_event_is_refused(chain: Chain) -> None:
    chain.blocks(3, txs=1)
    r = reader(chain, MadeUpIndex(chain.node))
    with pytest.raises(UnverifiedEvent, match="another event"):
        await r.find_proven(["bank.transfer"], None)


async def test_an_endpoint_of_another_chain_is_refused(chain: Chain, tmp_path: Path) -> None:
    [dc] = build_devnet(["chain-b"], seed="bus-tests")
    other = Chain(dc, open_node(dc, tmp_path / "b"))
    try:
        other.blocks(3)
        with pytest.raises(AnchorMismatch, match="it is 'chain-b'"):
            reader(chain, Endpoint(other.node))

        class Posing(Endpoint):  # says chain-a, serves chain-b's headers
            @property
            def chain_id(self) -> str:
                return "chain-a"

        with pytest.raises(AnchorMismatch, match="answered chain-b@1"):
            await reader(chain, Posing(other.node)).verified_header(2)
    finally:
        other.node.store.close()


# --- bounds -----------------------------------------------------------------------------


async def test_work_per_call_is_bounded(chain: Chain, attacker: Chain) -> None:
    blocks = chain.blocks(30)
    attacker.blocks(30)
    anchor = TrustAnchor("chain-a", "--trust", height=25, header_hash=blocks[24].header.hash)
    r = VerifiedReader(Endpoint(chain.node), anchor, max_headers=10)
    with pytest.raises(VerifyBudgetExceeded, match="20 headers below"):
        await r.verified_header(5)
    # a skip that keeps lacking trust bisects; the steps are bounded too
    pin = TrustAnchor("chain-a", "--trust", height=2, header_hash=blocks[1].header.hash)
    r = VerifiedReader(OtherValidators(chain.node, attacker.node, at=3), pin, max_steps=2)
    with pytest.raises(VerifyBudgetExceeded, match="bisection steps"):
        await r.verified_header(30)
    with pytest.raises(UnverifiedHeader, match="not final"):
        await reader(chain).verified_header(31)


async def test_a_trusted_state_past_its_trusting_period_is_refused(chain: Chain) -> None:
    blocks = chain.blocks(5)
    late = blocks[0].header.time / 1000 + 15 * 86400
    r = reader(chain, clock=lambda: late)
    with pytest.raises(TrustExpired, match="trusting period"):
        await r.verified_header(5)


# --- proof of work ----------------------------------------------------------------------


@pytest.fixture
def pow_chain(tmp_path: Path) -> Iterator[Chain]:
    params = devnet_pow_params(finality_depth=3)
    [dc] = build_devnet(["chain-w"], seed="bus-tests", consensus={"chain-w": params})
    node = open_node(dc, tmp_path)
    yield Chain(dc, node)
    node.store.close()


async def test_a_pow_header_verifies_by_work_once_final(pow_chain: Chain) -> None:
    blocks = pow_chain.blocks(8, txs=1)
    r = VerifiedReader(
        Endpoint(pow_chain.node),
        TrustAnchor.of_genesis(pow_chain.dc.genesis, "genesis"),
    )
    assert await r.verified_header(5) == blocks[4].header
    with pytest.raises(UnverifiedHeader, match="not final"):
        await r.verified_header(6)
    assert await r.prove_event(5, 0) == blocks[4].events[0]

    class Unsealed(Endpoint):
        async def get_header(self, height: int) -> Header | None:
            h = await super().get_header(height)
            assert h is not None
            return dataclasses.replace(h, nonce=(h.nonce or 0) + 1) if height == 4 else h

    r = VerifiedReader(
        Unsealed(pow_chain.node),
        TrustAnchor.of_genesis(pow_chain.dc.genesis, "genesis"),
    )
    with pytest.raises(UnverifiedHeader, match="header 2"):
        await r.verified_header(2)  # needs 3..5 on top: header 4 is not sealed
