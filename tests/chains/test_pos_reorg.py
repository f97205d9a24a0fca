"""Reorganisations in a proof-of-stake node, through the engine seam (``chains.branch``):
a peer's branch the PoS fork choice prefers replaces the tip (``Node.submit_block``), its
dropped transactions return to the mempool, subscribers get the typed notice; a losing
branch is kept aside; a forged seal, an ineligible proposer and a branch forking below
the final height are refused with nothing changed.

Two nodes from one genesis, each on its own SQLite store: ``a`` is the node under test,
``b`` a peer that seals a competing branch with the same validator keys."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from chains.devnet import DevnetChain, build_devnet
from chains.errors import (
    ForkBelowFinality,
    IneligibleProposer,
    InterlockError,
    InvalidBlock,
    InvalidProposerSignature,
    UnknownParent,
)
from chains.node import Node
from chains.pos import (
    MAX_SLOT,
    devnet_pos_params,
    get_pos_hash,
    get_seal_bytes,
    is_eligible,
    propose,
)
from chains.types import Block
from tests.chains.peers import (
    check_a_bft_node_refuses,
    check_switched,
    double_spend,
    pay,
    shared_history,
    two_nodes,
)

PARAMS = devnet_pos_params(finality_depth=3)
RULE = PARAMS.branch_rule()


@pytest.fixture
def dc() -> DevnetChain:
    return build_devnet(["chain-s"], seed="pos-reorg-tests", consensus={"chain-s": PARAMS})[0]


@pytest.fixture
def nodes(dc: DevnetChain, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    yield from two_nodes(dc, tmp_path)


def block(node: Node, height: int) -> Block:
    b = node.get_block(height)
    assert b is not None
    return b


def snapshot(node: Node) -> tuple[object, ...]:
    return (
        node.height,
        block(node, node.height).header.hash,
        node.chain.state.root(),
        len(node.mempool),
        dict(node._side),
        node.reorgs,
    )


async def test_a_longer_pos_branch_replaces_the_tip(
    dc: DevnetChain, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    race = await double_spend(a, b, dc)
    reorgs = a.reorgs
    # equally long: the PoS fork choice (fewer slots, then the lower tip hash) decides
    wins = RULE.is_better_branch([race.first.header], [race.ours.header])
    assert await a.submit_block(race.first) == ("best" if wins else "side")
    assert await a.submit_block(race.second) == "best"  # longer: it wins either way
    await check_switched(a, b, dc, race)
    assert a.reorgs > reorgs
    # and the node builds on the new tip, its block judged by the chain's stake table
    assert a.produce_block().header.prev_hash == race.second.header.hash


async def test_dropped_transactions_are_mined_again(
    dc: DevnetChain, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    await shared_history(a, b, 1)
    a.submit_nowait(pay(dc, 0, "bob"))
    a.produce_block()
    a.submit_nowait(pay(dc, 1, "bob"))  # waiting, its nonce pending after the first's
    for blk in (b.produce_block(), b.produce_block()):  # the first may win or lose
        await a.submit_block(blk)
    assert a.height == 3
    # both go back, in nonce order: the mempool forgets the old chain's pending nonces
    assert len(a.mempool) == 2
    mined = a.produce_block().txs
    assert [tx.hash for tx in mined] == [pay(dc, n, "bob").hash for n in (0, 1)]


async def test_a_losing_pos_branch_is_kept_aside(dc: DevnetChain, nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await shared_history(a, b, 1)
    a.produce_block()
    a.produce_block()
    b.submit_nowait(pay(dc, 0, "dave"))
    shorter = b.produce_block()
    before = snapshot(a)
    assert await a.submit_block(shorter) == "side"
    assert shorter.header.hash in a._side
    after = snapshot(a)
    assert after[:4] == before[:4]  # only the side branch grew
    assert after[5] == before[5]
    assert await a.submit_block(shorter) == "duplicate"
    # the branch grows past the chain: it wins, from where it was kept
    assert await a.submit_block(b.produce_block()) in {"side", "best"}  # as long as ours
    assert await a.submit_block(b.produce_block()) == "best"
    assert block(a, 2).header.hash == shorter.header.hash
    assert a.height == 4


async def test_hostile_pos_blocks_are_refused_and_change_nothing(
    dc: DevnetChain, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    await shared_history(a, b, 1)
    for _ in range(PARAMS.finality_depth + 2):
        a.produce_block()
    a.submit_nowait(pay(dc, 0, "bob"))
    b.submit_nowait(pay(dc, 0, "dave"))
    theirs = [b.produce_block() for _ in range(PARAMS.finality_depth + 4)]
    before = snapshot(a)

    async def refused(blk: Block, error: type[InterlockError]) -> None:
        with pytest.raises(error) as info:
            await a.submit_block(blk)
        assert "\n" not in str(info.value)
        assert info.value.code
        assert snapshot(a) == before

    # longer, but forking below the final height: a final block is never replaced
    await refused(theirs[0], ForkBelowFinality)
    await refused(theirs[1], UnknownParent)  # its parent was refused: never stored
    # a forged seal on a block that would otherwise extend the chain
    tip = block(a, a.height)
    own = block(b, 2)
    forged_seal = bytes([own.header.seal[0] ^ 1]) + own.header.seal[1:]
    forged = dataclasses.replace(own, header=dataclasses.replace(own.header, seal=forged_seal))
    await refused(forged, InvalidProposerSignature)
    # an ineligible proposer: a staked validator at a slot its stake does not win, and a
    # key with no stake at all, each sealing with its own (valid) signature
    table, tip_header = a.chain.validators, tip.header
    staked = dc.validator_keys[0]
    child = dataclasses.replace(
        tip_header,
        height=tip_header.height + 1,
        prev_hash=tip_header.hash,
        time=tip_header.time + PARAMS.min_block_ms,
        validators_hash=table.hash,
        next_validators_hash=table.hash,
    )
    for key in (staked, dc.accounts["alice"]):
        stake = table.by_key.get(key.public_key, 0)
        for slot in range(MAX_SLOT):
            h = dataclasses.replace(child, proposer=key.public_key, slot=slot, seal=b"")
            if not is_eligible(get_pos_hash(h), stake, PARAMS.target):
                break
        h = dataclasses.replace(h, seal=key.sign(get_seal_bytes(get_pos_hash(h))))
        await refused(Block(h, tip.commit, (), (), ()), IneligibleProposer)
    # eligible and sealed, but not what its (absent) transactions execute to: the branch
    # wins by the fork choice, is executed on a copy, and refused whole
    sealed = propose(
        PARAMS, dataclasses.replace(child, state_root=bytes(32)), table, dc.validator_keys
    )
    await refused(Block(sealed, tip.commit, (), (), ()), InvalidBlock)
    # a block of another chain, and a BFT node: no blocks from peers
    await refused(
        dataclasses.replace(own, header=dataclasses.replace(own.header, chain_id="x")), InvalidBlock
    )
    await check_a_bft_node_refuses(own, a.store.path.parent / "bft")
