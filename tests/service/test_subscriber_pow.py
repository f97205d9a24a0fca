"""The verifying subscriber on a proof-of-work chain: work instead of signatures, and a
block yielded only once ``finality_depth`` blocks are on top of it.

Blocks are mined by hand (``node.produce_block()``), so every scenario is exact."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from chains.devnet import build_devnet
from chains.engine import ChainConsensus
from chains.handle import InProcessChain
from chains.pow import devnet_pow_params, mine, target_bytes
from chains.service.bus import BusMessage, MemoryBus
from chains.service.subscriber import ChainSubscriber, TrustedState, subscriber_at
from chains.service.wire import encode_header, encode_reorg, headers_topic, reorgs_topic
from chains.types import Block
from tests.conftest import open_node
from tests.service.test_subscriber import Chain, feed

PARAMS = devnet_pow_params(finality_depth=3)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    [dc] = build_devnet(["chain-w"], seed="bus-tests", consensus={"chain-w": PARAMS})
    node = open_node(dc, tmp_path)
    yield Chain(dc, node)
    node.store.close()


def subscriber(chain: Chain) -> ChainSubscriber:
    g = chain.dc.genesis
    return ChainSubscriber(
        MemoryBus(),
        InProcessChain(chain.node),
        trusted=TrustedState.from_genesis(g),
        consensus=ChainConsensus(g.consensus, g.time),
    )


def forged_header(chain: Chain, block: Block, **changes: object) -> BusMessage:
    """``block``'s header changed and mined again: valid work, whatever the change."""
    header = mine(dataclasses.replace(block.header, nonce=0, **changes))  # type: ignore[arg-type]
    assert header is not None
    forged = dataclasses.replace(block, header=header)
    return BusMessage(headers_topic("chain-w"), encode_header(forged, chain.vals(block)), False)


async def test_a_block_is_yielded_only_once_final(chain: Chain) -> None:
    blocks = chain.blocks(6, txs=2)
    sub = subscriber(chain)
    got = await feed(sub, [m for b in blocks[:3] for m in chain.msgs(b)])
    assert got == []  # heights 1..3 verified, none with 3 blocks on top yet
    assert sub.trusted is not None
    assert sub.trusted.height == 3
    got = await feed(sub, chain.msgs(blocks[3]))
    assert [v.height for v in got] == [1]
    got = await feed(sub, [m for b in blocks[4:] for m in chain.msgs(b)])
    assert [v.height for v in got] == [2, 3]
    assert [v.events for v in got] == [b.events for b in blocks[1:3]]
    assert sub.stats.rejected == {}


async def test_headers_without_the_work_or_the_target_are_refused(chain: Chain) -> None:
    blocks = chain.blocks(2, txs=1)
    sub = subscriber(chain)
    await feed(sub, chain.msgs(blocks[0]))
    easier = target_bytes(PARAMS.initial_target * 4)  # above max_target
    unsealed = dataclasses.replace(blocks[1].header, nonce=blocks[1].header.nonce + 1)  # type: ignore[operator]
    bad_nonce = dataclasses.replace(blocks[1], header=unsealed)
    cases = [
        forged_header(chain, blocks[1], target=easier),
        forged_header(chain, blocks[1], target=target_bytes(PARAMS.initial_target // 2)),
        BusMessage(
            headers_topic("chain-w"), encode_header(bad_nonce, chain.vals(blocks[1])), False
        ),
    ]
    for msg in cases:
        await sub.process(msg)
    assert sub.trusted is not None
    assert sub.trusted.height == 1
    assert sum(sub.stats.rejected.values()) == len(cases)
    # a payload with a target and no nonce is malformed, not a BFT header
    obj = orjson.loads(chain.header_msg(blocks[1]).payload)
    del obj["header"]["nonce"]
    await sub.process(BusMessage(headers_topic("chain-w"), orjson.dumps(obj), False))
    assert sub.stats.rejected["MalformedPayload"] == 1
    await feed(sub, chain.msgs(blocks[1]))  # the real one still verifies
    assert sub.trusted.height == 2


async def test_a_bft_rule_refuses_headers_sealed_without_a_commit(chain: Chain) -> None:
    """A follower that did not ask the chain for its engine checks signatures: a PoW (or
    PoS) header's commit has none, so nothing is yielded (it fails closed)."""
    blocks = chain.blocks(2)
    g = chain.dc.genesis
    sub = ChainSubscriber(
        MemoryBus(), InProcessChain(chain.node), trusted=TrustedState.from_genesis(g)
    )
    assert await feed(sub, [m for b in blocks for m in chain.msgs(b)]) == []
    assert sub.stats.rejected["UntrustedHeader"] >= 1


async def test_fill_from_the_handle_checks_work_across_a_retarget(chain: Chain) -> None:
    """Heights the bus lost are read from the chain and put through the same rules,
    across a retarget window (the anchor time is the genesis time, then block 16's)."""
    n = PARAMS.retarget_window * 2 + PARAMS.finality_depth + 1
    chain.blocks(n, txs=0)
    sub = await subscriber_at(MemoryBus(), InProcessChain(chain.node), 0, idle_timeout=0.05)
    async with sub:
        got = [await anext(sub) for _ in range(n - PARAMS.finality_depth)]
    assert [v.height for v in got] == list(range(1, n - PARAMS.finality_depth + 1))
    assert all(v.filled for v in got)
    # trusting from a cursor inside the second window reads that window's anchor
    sub = await subscriber_at(MemoryBus(), InProcessChain(chain.node), 20, idle_timeout=0.05)
    async with sub:
        assert (await anext(sub)).height == 21


def reorg_msg(fork: int, old: int, tip: Block) -> BusMessage:
    return BusMessage(
        reorgs_topic("chain-w"), encode_reorg("chain-w", fork, old, tip.header, 0), False
    )


async def test_a_reorg_notice_is_checked_against_the_chain(chain: Chain, tmp_path: Path) -> None:
    """Node ``a`` is followed; a peer ``b`` mines a heavier branch above height 2 and
    ``a`` takes it. A notice that the chain did not reorganise (anyone may publish one)
    changes nothing; the node's own notice makes the subscriber read the chain, drop the
    held blocks above the fork and verify the new branch, from which it then yields."""
    a = chain.node
    b = open_node(chain.dc, tmp_path / "peer")
    try:
        shared = chain.blocks(2, txs=0)
        for blk in shared:
            assert await b.submit_block(blk) == "best"
        ours = chain.blocks(2, txs=1)
        g, now = chain.dc.genesis, [0.0]
        sub = ChainSubscriber(
            MemoryBus(),
            InProcessChain(a),
            trusted=TrustedState.from_genesis(g),
            consensus=ChainConsensus(g.consensus, g.time),
            clock=lambda: now[0],
        )
        got = await feed(sub, [m for x in shared + ours for m in chain.msgs(x)])
        assert [v.height for v in got] == [1]
        held = sub.trusted
        # forged: no reorganisation happened; and a burst of them spends the budget
        for _ in range(20):
            await sub.process(reorg_msg(2, 4, ours[-1]))
        assert sub.trusted == held
        assert (sub.stats.reorg_notices, sub.stats.reorgs) == (20, 0)
        assert sub.stats.deferred > 0
        # the peer's branch: 3 blocks against 2, so more work; a reorganises
        theirs = [b.produce_block() for _ in range(3)]
        for blk in theirs:
            await a.submit_block(blk)
        assert a.get_block(5) == theirs[-1]
        now[0] += 60  # the budget the forged burst spent comes back with time
        await sub.process(reorg_msg(2, 4, theirs[-1]))
        assert sub.stats.reorgs == 1
        assert sub.trusted is not None
        assert (sub.trusted.height, sub.trusted.header_hash) == (5, theirs[-1].header.hash)
        got = sub.take_ready()
        assert [v.height for v in got] == [2]
        # the republished headers are what it holds now; the next block yields block 3 of
        # the new branch, never the replaced one
        assert await feed(sub, [m for x in theirs for m in chain.msgs(x)]) == []
        nxt = a.produce_block()
        got = await feed(sub, chain.msgs(nxt))
        assert [v.header.hash for v in got] == [theirs[0].header.hash]
        assert ours[0].header.hash != theirs[0].header.hash
        assert sub.stats.rejected == {}
    finally:
        b.store.close()
