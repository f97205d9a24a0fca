"""Two nodes of one chain as peers, for the reorganisation tests (PoW and PoS): ``a`` is
the node under test, ``b`` a peer that seals a competing branch. The engines' tests share
the races they set up here and the checks that hold whatever the engine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chains.devnet import DevnetChain, build_devnet
from chains.errors import InvalidBlock
from chains.node import ChainReorganised, Node, Subscription
from chains.types import Block, Tx
from tests.conftest import open_node


def two_nodes(dc: DevnetChain, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """Two nodes from ``dc``'s genesis, each on its own SQLite store (a fixture's body)."""
    a, b = open_node(dc, tmp_path / "a"), open_node(dc, tmp_path / "b")
    yield a, b
    a.store.close()
    b.store.close()


def pay(dc: DevnetChain, nonce: int, to: str, amount: int = 1) -> Tx:
    """alice pays ``to`` with her ``nonce``."""
    args = {"to": dc.accounts[to].address, "denom": dc.denom, "amount": amount}
    return Tx.create(dc.accounts["alice"], dc.chain_id, nonce, "bank", "transfer", args)


async def share(a: Node, b: Node, upto: int) -> None:
    """``b`` takes ``a``'s blocks up to ``upto`` (as a peer would)."""
    for h in range(b.height + 1, upto + 1):
        block = a.get_block(h)
        assert block is not None
        assert await b.submit_block(block) == "best"


async def shared_history(a: Node, b: Node, blocks: int) -> None:
    """``a`` produces ``blocks`` blocks and ``b`` takes them: where the branches fork."""
    for _ in range(blocks):
        a.produce_block()
    await share(a, b, a.height)


def balance(node: Node, dc: DevnetChain, who: str) -> object:
    return node.chain.query(
        "bank", "balance", {"address": dc.accounts[who].address, "denom": dc.denom}
    )


@dataclass(frozen=True, slots=True)
class DoubleSpend:
    """Two branches from height 2, as :func:`double_spend` leaves them."""

    sub: Subscription
    """``a``'s subscription from height 3, which has yielded ``ours``."""
    ours: Block
    """``a``'s block 3: alice pays bob (her nonce 0) and carol (nonce 1)."""
    first: Block
    """``b``'s block 3: alice's nonce 0 pays dave instead."""
    second: Block
    """``b``'s block 4, on ``first``: ``b``'s branch is the longer."""
    bob_before: object
    """bob's balance at height 2."""


async def double_spend(a: Node, b: Node, dc: DevnetChain) -> DoubleSpend:
    """Both nodes share two blocks; then ``a`` commits block 3 and ``b`` seals a longer
    branch in which alice's nonce 0 pays someone else. Nothing is sent to ``a`` yet."""
    await shared_history(a, b, 2)
    sub = a.subscribe()
    bob_before = balance(a, dc, "bob")
    a.submit_nowait(pay(dc, 0, "bob"))
    a.submit_nowait(pay(dc, 1, "carol"))
    ours = a.produce_block()
    assert (await anext(sub)).height == 3
    b.submit_nowait(pay(dc, 0, "dave", 7))
    first, second = b.produce_block(), b.produce_block()
    return DoubleSpend(sub, ours, first, second, bob_before)


async def check_switched(a: Node, b: Node, dc: DevnetChain, race: DoubleSpend) -> ChainReorganised:
    """``a``, given ``b``'s branch of ``race``, runs on it: its blocks and state, the
    payment to bob gone, the typed notice from the fork, and carol's payment (nonce 1,
    which fits the new branch) back in the mempool while bob's (nonce 0, spent on dave)
    is refused. Returns the notice for the engine's own checks."""
    assert a.height == 4
    got = [a.get_block(h) for h in (3, 4)]
    assert [blk.header.hash if blk else None for blk in got] == [
        race.first.header.hash,
        race.second.header.hash,
    ]
    assert a.chain.state.root() == race.second.header.state_root
    assert balance(a, dc, "dave") == balance(b, dc, "dave")
    assert balance(a, dc, "bob") == race.bob_before  # the payment to bob is gone with block 3
    with pytest.raises(ChainReorganised) as info:
        await anext(race.sub)
    assert (info.value.fork_height, info.value.next_height) == (2, 3)
    assert [tx.hash for tx in a.mempool.take(10)] == [pay(dc, 1, "carol").hash]
    assert await a.submit_block(race.second) == "duplicate"
    return info.value


async def check_a_bft_node_refuses(block: Block, where: Path) -> None:
    """A BFT chain takes no blocks from peers: its node refuses ``block`` outright."""
    bft = build_devnet(["chain-a"], seed="peers")[0]
    node = open_node(bft, where)
    try:
        with pytest.raises(InvalidBlock, match="no blocks from peers"):
            await node.submit_block(block)
    finally:
        node.store.close()
