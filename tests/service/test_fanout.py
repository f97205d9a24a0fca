"""One verified stream per chain, fanned out: every follower gets every block above its
cursor, in order, exactly once, whatever the others do; nothing unverified reaches one.

The chain's blocks are produced by hand and published on an in-memory bus; the gaps a
follower fills are read through the chain's handle and verified there.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from chains.handle import InProcessChain
from chains.service.bus import BusMessage, MemoryBus
from chains.service.fanout import Follower, SharedStream
from chains.service.subscriber import validate_event
from chains.types import Block
from tests.service import test_subscriber
from tests.service.test_subscriber import Chain

chain = test_subscriber.chain  # the fixture: a node driven by hand


async def publish(bus: MemoryBus, msgs: list[BusMessage]) -> None:
    for m in msgs:
        await bus.publish(m.topic, m.payload, qos=1)


async def listening(stream: SharedStream) -> None:
    """Until the stream's subscriber reads the bus (what is published before reaches it
    only through the idle fill)."""

    for _ in range(2000):  # 10 s
        if stream.sub is not None and stream.sub._sub is not None:
            await asyncio.sleep(0.02)
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the stream never subscribed")


async def take(f: Follower, upto: int) -> list[int]:
    """Heights handed to ``f`` until ``upto``; each block's events checked against its
    header by the test itself."""
    heights: list[int] = []
    while not heights or heights[-1] < upto:
        for b in await asyncio.wait_for(f.next_batch(), 10):
            for p in b.proofs:
                validate_event(b.header, p)
            heights.append(b.height)
    return heights


def expected_events(blocks: list[Block]) -> dict[int, list[object]]:
    return {b.height: list(b.events) for b in blocks}


async def test_two_followers_at_different_speeds_both_get_every_block(chain: Chain) -> None:
    blocks = chain.blocks(1, txs=2)  # trust starts from the chain's own header 1
    async with MemoryBus() as bus, SharedStream(bus, InProcessChain(chain.node)) as stream:
        fast = stream.follow("fast", 0)
        slow = stream.follow("slow", 0, maxsize=2)  # not read until the end: overflows
        async with fast, slow:
            await listening(stream)
            blocks += chain.blocks(9, txs=2)
            got_fast: list[Block] = []
            for b in blocks:
                await publish(bus, chain.msgs(b))
                batch = await asyncio.wait_for(fast.next_batch(), 10)
                got_fast.extend(Block(v.header, v.commit, (), (), v.events) for v in batch)
            assert [b.height for b in got_fast] == list(range(1, 11))
            assert {b.height: list(b.events) for b in got_fast} == expected_events(blocks)
            assert fast.filled == 0  # all from the stream
            # the slow one missed 3..10 while its queue was full: read from the chain
            assert slow.dropped == 8
            assert await take(slow, 10) == list(range(1, 11))
            assert slow.filled == 8
        assert stream.sub is not None
        assert stream.sub.stats.verified == 10  # each block verified once for both


async def test_a_follower_from_an_older_cursor_gets_the_gap_filled(chain: Chain) -> None:
    old = chain.blocks(5, txs=1)
    async with (
        MemoryBus() as bus,
        SharedStream(bus, InProcessChain(chain.node)) as stream,
        stream.follow("first", 5) as first,  # the stream starts at 5
    ):
        await listening(stream)
        new = chain.blocks(3, txs=1)
        for b in new:
            await publish(bus, chain.msgs(b))
        assert await take(first, 8) == [6, 7, 8]
        # a worker restarting from its cursor, 2: 3..5 are below the stream's start
        async with stream.follow("restarted", 2) as late:
            block9 = chain.block(txs=1)
            await publish(bus, chain.msgs(block9))
            assert await take(late, 9) == [3, 4, 5, 6, 7, 8, 9]
            assert late.filled >= 3
        assert await take(first, 9) == [9]
    assert [b.height for b in old] == [1, 2, 3, 4, 5]


async def test_forged_messages_reach_no_follower(chain: Chain) -> None:
    async with (
        MemoryBus() as bus,
        SharedStream(
            bus, InProcessChain(chain.node), want=lambda t: t == "bank.transfer"
        ) as stream,
    ):
        blocks = chain.blocks(1, txs=2)
        async with stream.follow("a", 0) as a, stream.follow("b", 0, maxsize=1) as b:
            await listening(stream)
            blocks += chain.blocks(2, txs=2)
            for blk in blocks:
                [header, events] = chain.msgs(blk)
                forged_header = orjson.loads(header.payload)
                forged_header["header"]["state_root"] = "ab" * 32
                forged_events = orjson.loads(events.payload)
                forged_events["events"][0]["event"]["attributes"]["amount"] = 10**9
                await publish(
                    bus,
                    [
                        BusMessage(header.topic, orjson.dumps(forged_header), False),
                        header,
                        BusMessage(events.topic, orjson.dumps(forged_events), False),
                        events,
                    ],
                )
            for f in (a, b):
                got = []
                while len(got) < 3:
                    got.extend(await asyncio.wait_for(f.next_batch(), 10))
                assert [v.height for v in got] == [1, 2, 3]
                for v, blk in zip(got, blocks, strict=True):
                    assert v.header == blk.header
                    assert list(v.events) == [e for e in blk.events if e.type == "bank.transfer"]
        assert stream.sub is not None
        assert stream.sub.stats.rejected["UntrustedHeader"] == 3
        assert stream.sub.stats.rejected["BadEventProof"] == 3


async def test_a_stream_that_cannot_start_fails_its_followers_and_restarts(
    chain: Chain,
) -> None:
    class Down(InProcessChain):
        down = True

        async def get_block(self, height: int) -> Block | None:
            if self.down:
                raise ConnectionError("chain down")
            return await super().get_block(height)

    chain.blocks(2)
    handle = Down(chain.node)
    async with MemoryBus() as bus, SharedStream(bus, handle, idle_timeout=0.05) as stream:
        async with stream.follow("w", 1) as f:
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(f.next_batch(), 10)
        handle.down = False
        async with stream.follow("w", 1) as f:  # the supervisor's retry
            assert await take(f, 2) == [2]
