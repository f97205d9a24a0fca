"""The block publisher: every height, headers and events, in order, catching up after lag."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chains.devnet import build_devnet
from chains.handle import InProcessChain
from chains.pow import devnet_pow_params
from chains.service.bus import BusMessage, MemoryBus
from chains.service.publisher import Publisher, status_will
from chains.service.subscriber import ChainSubscriber, VerifiedBlock
from chains.service.wire import (
    BlockEvents,
    ChainReorg,
    ChainStatus,
    SignedHeader,
    chain_filter,
    decode,
    status_topic,
)
from tests.conftest import devnet_chain, open_node, transfer


class GatedBus(MemoryBus):
    """A memory bus whose publishes can be held up, as by a broker outage."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.open.set()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        await self.open.wait()
        await super().publish(topic, payload, qos, retain)


async def collect(sub: ChainSubscriber, upto: int, within: float = 30) -> list[VerifiedBlock]:
    async def go() -> list[VerifiedBlock]:
        out = []
        async for vb in sub:
            out.append(vb)
            if vb.height >= upto:
                break
        return out

    return await asyncio.wait_for(go(), within)


POW = devnet_pow_params(finality_depth=3)


def decoded(msgs: list[BusMessage]) -> list[SignedHeader | BlockEvents | ChainStatus | ChainReorg]:
    return [decode(m.topic, m.payload) for m in msgs]


async def test_publishes_header_then_events_for_every_height_in_order(tmp_path: Path) -> None:
    dc = devnet_chain()
    node = open_node(dc, tmp_path)
    async with MemoryBus() as bus, bus.subscribe(chain_filter(dc.chain_id)) as raw:
        async with node, Publisher(node, bus, status_every=5) as pub:
            for i in range(10):
                await node.submit(transfer(dc, i))
            await node.wait_for_height(15)
            await pub.wait_published(15)
        msgs: list[BusMessage] = []
        while raw.qsize():
            msgs.append(await raw.__anext__())
    items = decoded(msgs)
    per_height = [(type(x).__name__, x.height) for x in items if not isinstance(x, ChainStatus)]
    heights = sorted({h for _, h in per_height})
    assert heights == list(range(1, heights[-1] + 1))
    expected = [(k, h) for h in heights for k in ("SignedHeader", "BlockEvents")]
    assert per_height == expected
    events = [x for x in items if isinstance(x, BlockEvents)]
    assert sum(len(e.proofs) for e in events) == 10  # one bank.transfer event per tx
    statuses = [x for x in items if isinstance(x, ChainStatus)]
    assert statuses[0].state == "online"
    assert statuses[-1].state == "offline"
    assert any(s.height == 5 for s in statuses)


async def test_catches_up_from_the_store_after_the_bus_held_it_up(tmp_path: Path) -> None:
    dc = devnet_chain()
    node = open_node(dc, tmp_path, interval=0.01)
    bus = GatedBus()
    async with (
        bus,
        node,
        ChainSubscriber(bus, InProcessChain(node), idle_timeout=30) as sub,
        Publisher(node, bus, queue=3, window=4) as pub,
    ):
        await pub.wait_published(2)
        bus.open.clear()  # an outage: publishes block, the node keeps committing
        start = node.height
        await node.wait_for_height(start + 20)  # far past the publisher's queue of 3
        bus.open.set()
        blocks = await collect(sub, start + 20)
        assert pub.catch_ups >= 1
    heights = [b.height for b in blocks]
    assert heights == list(range(heights[0], start + 21))
    assert not any(b.filled for b in blocks)  # the publisher filled it, not the handle


async def test_resumes_publishing_from_a_given_height(tmp_path: Path) -> None:
    dc = devnet_chain()
    node = open_node(dc, tmp_path, interval=0.01)
    async with MemoryBus() as bus, node:
        await node.wait_for_height(10)
        async with bus.subscribe(chain_filter(dc.chain_id)) as raw:
            async with Publisher(node, bus, from_height=3) as pub:
                await pub.wait_published(10)
            items = []
            while raw.qsize():
                items.append(decode((m := await raw.__anext__()).topic, m.payload))
    headers = [x.height for x in items if isinstance(x, SignedHeader)]
    assert headers[:8] == list(range(3, 11))


async def test_status_will_names_the_retained_status_topic() -> None:
    will = status_will("chain-a")
    assert will.topic == status_topic("chain-a")
    off = decode(will.topic, will.offline)
    assert isinstance(off, ChainStatus)
    assert (off.state, off.height) == ("offline", None)


async def test_stop_closes_input_and_ends_within_the_bound(tmp_path: Path) -> None:
    dc = devnet_chain()
    node = open_node(dc, tmp_path, interval=0.01)
    bus = GatedBus()
    async with bus, node:
        pub = Publisher(node, bus, stop_timeout=0.5)
        pub.start()
        await pub.wait_published(1)
        bus.open.clear()  # publishes now hang forever
        await node.wait_for_height(node.height + 3)
        await asyncio.wait_for(pub.stop(), 10)  # bounded although the bus never answers
        bus.open.set()


def test_publisher_refuses_a_zero_window(tmp_path: Path) -> None:
    dc = devnet_chain()
    node = open_node(dc, tmp_path)
    with pytest.raises(ValueError, match="window"):
        Publisher(node, MemoryBus(), window=0)
    node.store.close()


async def test_a_halted_node_ends_run_even_while_the_bus_is_down(tmp_path: Path) -> None:
    """The service shape: ``run()`` in a task group, ended by the node closing its input."""
    dc = devnet_chain()
    node = open_node(dc, tmp_path, interval=0.01)
    bus = GatedBus()
    async with bus:
        bus.open.clear()  # the broker is down from the start
        await node.__aenter__()
        pub = Publisher(node, bus, window=4, stop_timeout=0.3)
        task = asyncio.create_task(pub.run())
        await node.wait_for_height(node.height + 10)  # the window is full and stuck
        await node.halt()
        await asyncio.wait_for(task, 10)
        assert pub.published_height == 0
        await node.stop()
        bus.open.set()


async def test_a_restarted_publisher_resumes_after_the_last_acknowledged_height(
    tmp_path: Path,
) -> None:
    """Heights committed while no publisher ran (a crash, an outage then a restart) are
    published by the next one: it starts after the height its cursor file records, not at
    the node's head."""
    dc = devnet_chain()
    node = open_node(dc, tmp_path, interval=0.01)
    cursor = tmp_path / "chain-a.published"
    async with MemoryBus() as bus, node:
        async with Publisher(node, bus, cursor=cursor) as pub:
            await pub.wait_published(3)
        stopped_at = pub.published_height
        await node.wait_for_height(stopped_at + 5)  # nobody publishes these
        async with bus.subscribe(chain_filter(dc.chain_id)) as raw:
            async with Publisher(node, bus, cursor=cursor) as again:
                await again.wait_published(stopped_at + 5)
            items = []
            while raw.qsize():
                items.append(decode((m := await raw.__anext__()).topic, m.payload))
    headers = [x.height for x in items if isinstance(x, SignedHeader)]
    assert headers[:5] == list(range(stopped_at + 1, stopped_at + 6))


async def test_a_cursor_ahead_of_the_store_or_unreadable_starts_at_the_head(
    tmp_path: Path,
) -> None:
    dc = devnet_chain()
    node = open_node(dc, tmp_path)
    for _ in range(3):
        node.produce_block()  # by hand: the head stays at 3
    cursor = tmp_path / "chain-a.published"
    for text in ("1000000\n", "", "x\n", "-5\n", "\u00b2\n"):
        cursor.write_text(text)
        async with MemoryBus() as bus, bus.subscribe(chain_filter(dc.chain_id)) as raw:
            async with Publisher(node, bus, cursor=cursor) as pub:
                await pub.wait_published(3)
            first = next(
                x
                for x in decoded([await raw.__anext__() for _ in range(raw.qsize())])
                if isinstance(x, SignedHeader)
            )
        assert first.height == 3, text
    node.store.close()


async def test_a_reorganisation_is_announced_then_republished_from_the_fork(
    tmp_path: Path,
) -> None:
    [dc] = build_devnet(["chain-w"], seed="bus-tests", consensus={"chain-w": POW})
    a, b = open_node(dc, tmp_path / "a"), open_node(dc, tmp_path / "b")
    async with MemoryBus() as bus, bus.subscribe(chain_filter(dc.chain_id)) as raw:
        async with Publisher(a, bus, from_height=1) as pub:
            for _ in range(2):
                assert await b.submit_block(a.produce_block()) == "best"
            replaced = [a.produce_block() for _ in range(2)]
            await pub.wait_published(4)
            branch = [b.produce_block() for _ in range(3)]  # more work above height 2
            for blk in branch:
                await a.submit_block(blk)
            await pub.wait_published(5)
            assert pub.reorgs == 1
        msgs: list[BusMessage] = []
        while raw.qsize():
            msgs.append(await raw.__anext__())
    a.store.close()
    b.store.close()
    items = [x for x in decoded(msgs) if not isinstance(x, ChainStatus | BlockEvents)]
    at = next(i for i, x in enumerate(items) if isinstance(x, ChainReorg))
    notice = items[at]
    assert notice == ChainReorg(dc.chain_id, 2, 4, 5, branch[-1].header.hash, notice.time)
    before = [x.header.hash for x in items[:at] if isinstance(x, SignedHeader)]
    after = [x.header.hash for x in items[at + 1 :] if isinstance(x, SignedHeader)]
    assert before[2:] == [x.header.hash for x in replaced]
    assert after == [x.header.hash for x in branch]  # every height above the fork, again
