"""Reorganisations in a proof-of-work node: a peer's branch with more work replaces the
tip (``Node.submit_block``), dropped transactions return to the mempool, subscribers get
the typed notice, and a branch below the final height or with less work is refused.

Two nodes from one genesis, each on its own SQLite store: ``a`` is the node under test,
``b`` a peer that mines a competing branch."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import chains.node as node_module
from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.errors import ForkBelowFinality, InvalidBlock, UnknownParent
from chains.node import Node
from chains.pow import devnet_pow_params, mine
from chains.store import MemoryBlockStore
from chains.types import Header
from tests.chains.peers import (
    check_a_bft_node_refuses,
    check_switched,
    double_spend,
    pay,
    shared_history,
    two_nodes,
)
from tests.conftest import open_node

PARAMS = devnet_pow_params(finality_depth=3)


@pytest.fixture
def dc() -> DevnetChain:
    return build_devnet(["chain-w"], seed="reorg-tests", consensus={"chain-w": PARAMS})[0]


@pytest.fixture
def nodes(dc: DevnetChain, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    yield from two_nodes(dc, tmp_path)


async def test_a_branch_with_more_work_replaces_the_tip(
    dc: DevnetChain, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    race = await double_spend(a, b, dc)
    assert await a.submit_block(race.first) == "side"  # equal work: the incumbent stays
    assert a.get_block(3).header.hash == race.ours.header.hash  # type: ignore[union-attr]
    assert await a.submit_block(race.second) == "best"
    reorg = await check_switched(a, b, dc, race)
    assert reorg.new_height == 4
    assert a.reorgs == 1


async def test_dropped_transactions_go_back_to_the_mempool(
    dc: DevnetChain, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    await shared_history(a, b, 1)
    a.submit_nowait(pay(dc, 0, "bob"))
    a.produce_block()
    b.produce_block()
    b.produce_block()
    for h in (2, 3):
        blk = b.get_block(h)
        assert blk is not None
        await a.submit_block(blk)
    assert a.height == 3
    assert len(a.mempool) == 1  # the payment to bob, back to be mined again
    blk = a.produce_block()
    assert [tx.hash for tx in blk.txs] == [pay(dc, 0, "bob").hash]


async def test_a_deep_branch_is_refused_and_a_lighter_one_changes_nothing(
    dc: DevnetChain, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    await shared_history(a, b, 1)
    for _ in range(PARAMS.finality_depth + 2):
        a.produce_block()
    for _ in range(PARAMS.finality_depth + 4):  # more work, but forking below final
        b.produce_block()
    tip = a.get_block(a.height)
    blk = b.get_block(2)
    assert blk is not None
    with pytest.raises(ForkBelowFinality):
        await a.submit_block(blk)
    assert a.get_block(a.height) == tip
    with pytest.raises(UnknownParent):  # its parent was refused: never stored
        await a.submit_block(b.get_block(3))  # type: ignore[arg-type]
    # a forged block: the header does not match its transactions' execution
    import dataclasses

    from chains.pow import mine

    real = a.get_block(a.height)
    assert real is not None
    bad_header = mine(
        dataclasses.replace(real.header, state_root=bytes(32), time=real.header.time + 1)
    )
    assert bad_header is not None
    forged = dataclasses.replace(real, header=bad_header)
    assert await a.submit_block(forged) == "side"  # checked by work; executed once it wins
    child_header = mine(
        dataclasses.replace(
            bad_header,
            height=bad_header.height + 1,
            time=bad_header.time + 1,
            prev_hash=bad_header.hash,
        )
    )
    assert child_header is not None
    with pytest.raises(InvalidBlock):  # the branch wins by work, but does not execute
        await a.submit_block(dataclasses.replace(real, header=child_header))
    assert a.get_block(a.height) == real
    # not a PoW chain: no blocks from peers
    await check_a_bft_node_refuses(real, a.store.path.parent / "bft")


async def test_the_node_mines_off_the_event_loop(
    dc: DevnetChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nonce search runs in a worker thread, ``MINE_TRIES`` nonces a call, and the
    event loop runs between the calls. With a fixed clock block 1's header, and so the
    nonce that seals it, is known in advance: the tries per call are set so that it takes
    several calls."""
    clock = 1_900_000_000.0
    probe = Node.open(
        dc.genesis, base_modules, dc.validator_keys, MemoryBlockStore(), clock=lambda: clock
    )
    expected = probe.produce_block().header  # mined inline, in one piece
    assert expected.nonce is not None
    assert expected.nonce >= 8
    monkeypatch.setattr(node_module, "MINE_TRIES", expected.nonce // 4 + 1)
    ticks, calls = [0], []

    def recording_mine(header: Header, start: int, tries: int) -> Header | None:
        calls.append((threading.get_ident(), ticks[0]))
        return mine(header, start, tries)

    monkeypatch.setattr(node_module, "mine", recording_mine)

    async def ticker() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    node = open_node(dc, tmp_path / "n")
    node.clock = lambda: clock
    task = asyncio.create_task(ticker())
    try:
        block = await node.produce_block_yielding()
    finally:
        task.cancel()
        node.store.close()
    assert block.header == expected
    assert len(calls) >= 4
    assert threading.get_ident() not in {thread for thread, _ in calls}
    seen = [t for _, t in calls]
    assert all(a < b for a, b in itertools.pairwise(seen))  # the loop ran in between
