"""Publisher → Mosquitto → verifying subscriber, including a broker outage (real broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from chains.handle import InProcessChain
from chains.service.bus import MqttBus, MqttOptions, parse_bus_url
from chains.service.publisher import Publisher, status_will
from chains.service.retry import Backoff
from chains.service.subscriber import ChainSubscriber, VerifiedBlock
from tests.conftest import Mosquitto, devnet_chain, open_node, transfer


def opts(url: str, **kw: object) -> MqttOptions:
    o = parse_bus_url(url)
    assert o is not None
    return replace(o, backoff=Backoff(initial=0.05, maximum=0.5), **kw)  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], within: float = 30) -> None:
    async def go() -> None:
        while not cond():  # noqa: ASYNC110 (a test polls state other tasks own)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(go(), within)


async def collect(sub: ChainSubscriber, upto: int, within: float = 60) -> list[VerifiedBlock]:
    async def go() -> list[VerifiedBlock]:
        out = []
        async for vb in sub:
            out.append(vb)
            if vb.height >= upto:
                break
        return out

    return await asyncio.wait_for(go(), within)


async def test_node_to_broker_to_verifying_subscriber(mqtt_url: str, tmp_path: Path) -> None:
    dc = devnet_chain()
    node = open_node(dc, tmp_path, interval=0.02)
    async with (
        MqttBus(opts(mqtt_url, will=status_will(dc.chain_id))) as pub_bus,
        MqttBus(opts(mqtt_url)) as sub_bus,
    ):
        await pub_bus.wait_connected(10)
        await sub_bus.wait_connected(10)
        async with (
            node,
            ChainSubscriber(sub_bus, InProcessChain(node)) as sub,
            Publisher(node, pub_bus),
        ):
            receipts = await asyncio.gather(*(node.submit(transfer(dc, i)) for i in range(30)))
            top = max(r.height for r in receipts) + 2
            blocks = await collect(sub, top)
            stored = {h: node.get_block(h) for h in range(1, top + 1)}
    heights = [b.height for b in blocks]
    assert heights == list(range(heights[0], top + 1))
    for b in blocks:
        block = stored[b.height]
        assert block is not None
        assert b.header == block.header
        assert b.events == block.events
    assert sum(len(b.events) for b in blocks) == 30
    assert sub.stats.rejected == {}


async def test_broker_restart_publisher_reconnects_and_subscriber_fills_the_gap(
    own_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    dc = devnet_chain()
    node = open_node(dc, tmp_path, interval=0.02)
    url = own_mosquitto.url
    heights: list[int] = []
    events = 0
    async with (
        MqttBus(opts(url, keepalive=2, will=status_will(dc.chain_id))) as pub_bus,
        MqttBus(opts(url, keepalive=2)) as sub_bus,
    ):
        await pub_bus.wait_connected(10)
        await sub_bus.wait_connected(10)
        async with (
            node,
            ChainSubscriber(sub_bus, InProcessChain(node), idle_timeout=0.3) as sub,
            Publisher(node, pub_bus, queue=4, window=4) as pub,
        ):

            async def consume() -> None:
                nonlocal events
                async for vb in sub:
                    heights.append(vb.height)
                    events += len(vb.events)

            consumer = asyncio.create_task(consume())
            # the subscriber anchors on its first block (the bus's first header, or the
            # chain's head after idle_timeout on a slow machine): transfers come after it
            await until(lambda: bool(heights))
            nonce = 0
            for _ in range(5):
                await node.submit(transfer(dc, nonce))
                nonce += 1
            await until(lambda: bool(heights) and heights[-1] >= node.height - 1)

            own_mosquitto.stop()  # the outage: the chain goes on without the broker
            outage_start = node.height
            for _ in range(5):
                await node.submit(transfer(dc, nonce))
                nonce += 1
            # With the bus down, the subscriber keeps up through the chain handle.
            await until(lambda: bool(heights) and heights[-1] >= outage_start + 10)
            assert sub.stats.filled > 0
            await node.wait_for_height(outage_start + 25)  # far past the publisher's window

            own_mosquitto.start()
            await pub_bus.wait_connected(30)
            # each bus retries on its own jittered backoff: the subscriber's may reconnect
            # later than the publisher's, after the catch-up below is already done
            await sub_bus.wait_connected(30)
            for _ in range(5):
                await node.submit(transfer(dc, nonce))
                nonce += 1
            target = node.height + 5
            await until(lambda: bool(heights) and heights[-1] >= target, within=60)
            await asyncio.wait_for(pub.wait_published(target), 60)  # it caught up, too
            consumer.cancel()
    assert heights[: heights.index(target) + 1] == list(range(heights[0], target + 1))
    assert events == 15
    assert pub_bus.connects >= 2
    assert sub_bus.connects >= 2
    assert pub.catch_ups >= 1  # it re-read the heights it missed from the store


async def test_a_clean_stop_leaves_offline_with_the_last_height(
    mqtt_url: str, tmp_path: Path
) -> None:
    """Issue 9: after a clean stop the publisher's ``offline`` with its last height was
    replaced by the bus's will-shaped ``offline`` with nulls, so a reader could not tell
    a clean stop from a crash and lost the height. A clean stop must not fire the will."""
    from chains.service.wire import ChainStatus, decode, status_topic

    dc = devnet_chain(f"clean-{tmp_path.name[-12:]}")
    node = open_node(dc, tmp_path, interval=0.02)
    async with MqttBus(opts(mqtt_url, will=status_will(dc.chain_id))) as pub_bus:
        await pub_bus.wait_connected(10)
        async with node, Publisher(node, pub_bus) as pub:
            await node.wait_for_height(3)
            await pub.wait_published(3)
        last = pub.published_height
    assert last >= 3
    seen: list[ChainStatus] = []
    async with MqttBus(opts(mqtt_url)) as reader:
        await reader.wait_connected(10)
        async with reader.subscribe(status_topic(dc.chain_id)) as sub:
            # the retained status, then anything the broker sends after it (a will would
            # come at once: the connection is already closed)
            m = await asyncio.wait_for(sub.__anext__(), 10)
            status = decode(m.topic, m.payload)
            assert isinstance(status, ChainStatus)
            seen.append(status)
            await asyncio.sleep(0.5)
            while sub.qsize():
                nxt = await sub.__anext__()
                later = decode(nxt.topic, nxt.payload)
                assert isinstance(later, ChainStatus)
                seen.append(later)
    assert [(s.state, s.height) for s in seen] == [("offline", last)]
    assert seen[0].time is not None
