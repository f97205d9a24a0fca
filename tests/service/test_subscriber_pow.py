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
from chains.service.wire import encode_header, headers_topic
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


async def test_a_bft_rule_refuses_pow_headers(chain: Chain) -> None:
    """A follower that did not ask the chain for its engine checks signatures: a PoW
    header has none, so nothing is yielded (it fails closed)."""
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
