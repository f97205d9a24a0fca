"""The MQTT bus against a real Mosquitto (see conftest: never a mock)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from chains.service.bus import BusMessage, BusSubscription, LastWill, MqttBus, parse_bus_url
from chains.service.retry import Backoff
from tests.conftest import ROOT, Mosquitto

FAST = Backoff(initial=0.05, maximum=0.5)


def options(url: str, **kw: object):  # type: ignore[no-untyped-def]
    o = parse_bus_url(url)
    assert o is not None
    return replace(o, backoff=FAST, **kw)


@pytest.fixture
async def bus(mqtt_url: str) -> AsyncIterator[MqttBus]:
    async with MqttBus(options(mqtt_url)) as b:
        await b.wait_connected(10)
        yield b


async def take(sub: BusSubscription, n: int, within: float = 10) -> list[BusMessage]:
    async def go() -> list[BusMessage]:
        return [await sub.__anext__() for _ in range(n)]

    return await asyncio.wait_for(go(), within)


def unique(name: str) -> str:
    return f"interlock-test/{os.getpid()}-{os.urandom(4).hex()}/{name}"


async def test_publish_and_subscribe_at_qos1_in_order(bus: MqttBus) -> None:
    base = unique("pubsub")
    async with bus.subscribe(f"{base}/+/headers") as sub:
        for i in range(200):
            await bus.publish(f"{base}/chain-a/headers", str(i).encode())
        await bus.publish(f"{base}/chain-a/events", b"not for this filter")
        got = await take(sub, 200)
        assert [m.payload for m in got] == [str(i).encode() for i in range(200)]
        assert {m.topic for m in got} == {f"{base}/chain-a/headers"}


async def test_concurrent_publishes_within_the_window_all_arrive(bus: MqttBus) -> None:
    base = unique("window")
    async with bus.subscribe(f"{base}/#") as sub:
        await asyncio.gather(*(bus.publish(f"{base}/x", str(i).encode()) for i in range(500)))
        got = await take(sub, 500)
        assert sorted(int(m.payload) for m in got) == list(range(500))


async def test_two_local_subscriptions_on_overlapping_filters_each_get_a_copy(
    bus: MqttBus,
) -> None:
    base = unique("overlap")
    async with bus.subscribe(f"{base}/#") as wide, bus.subscribe(f"{base}/a") as narrow:
        await bus.publish(f"{base}/a", b"1")
        await bus.publish(f"{base}/b", b"2")
        assert [m.payload for m in await take(wide, 2)] == [b"1", b"2"]
        assert [m.payload for m in await take(narrow, 1)] == [b"1"]
        await asyncio.sleep(0.2)
        assert wide.qsize() == 0
        assert narrow.qsize() == 0


async def test_retained_status_reaches_a_late_subscriber(mqtt_url: str) -> None:
    topic = unique("status")
    will = LastWill(topic, b"online", b"offline")
    async with MqttBus(options(mqtt_url, will=will)) as publisher:
        await publisher.wait_connected(10)
        async with MqttBus(options(mqtt_url)) as watcher:
            await watcher.wait_connected(10)
            async with watcher.subscribe(topic) as sub:
                [m] = await take(sub, 1)
                assert (m.payload, m.retain) == (b"online", True)
    # a clean close publishes "offline" itself: the will only fires on an unclean end
    async with MqttBus(options(mqtt_url)) as watcher:
        await watcher.wait_connected(10)
        async with watcher.subscribe(topic) as sub:
            [m] = await take(sub, 1)
            assert (m.payload, m.retain) == (b"offline", True)
        await watcher.publish(topic, b"", retain=True)


async def test_last_will_marks_a_killed_client_offline(mqtt_url: str) -> None:
    topic = unique("will")
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from chains.service.bus import LastWill, MqttBus, parse_bus_url
        from dataclasses import replace
        async def main():
            o = replace(parse_bus_url({mqtt_url!r}), keepalive=5,
                        will=LastWill({topic!r}, b"online", b"offline"))
            async with MqttBus(o) as bus:
                await bus.wait_connected(10)
                print("ready", flush=True)
                await asyncio.sleep(60)
        asyncio.run(main())
        """
    )
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, read from a thread)
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 20)
        assert line.strip() == "ready"
        async with MqttBus(options(mqtt_url)) as watcher:
            await watcher.wait_connected(10)
            async with watcher.subscribe(topic) as sub:
                [m] = await take(sub, 1)
                assert m.payload == b"online"
                os.kill(proc.pid, signal.SIGKILL)  # no DISCONNECT: the broker sends the will
                [m] = await take(sub, 1, within=20)
                assert m.payload == b"offline"
            await watcher.publish(topic, b"", retain=True)
    finally:
        proc.kill()
        proc.wait(5)


async def test_shared_subscription_spreads_messages_over_group_members(mqtt_url: str) -> None:
    base = unique("shared")
    async with (
        MqttBus(options(mqtt_url)) as a,
        MqttBus(options(mqtt_url)) as b,
        MqttBus(options(mqtt_url)) as pub,
    ):
        for x in (a, b, pub):
            await x.wait_connected(10)
        async with (
            a.subscribe(f"$share/workers/{base}/#") as sa,
            b.subscribe(f"$share/workers/{base}/#") as sb,
            a.subscribe(f"{base}/#") as everything,
        ):
            for i in range(100):
                await pub.publish(f"{base}/job", str(i).encode())
            seen = await take(everything, 100)
            assert len(seen) == 100
            await asyncio.sleep(0.3)
            ga = [m.payload async for m in _ready(sa)]
            gb = [m.payload async for m in _ready(sb)]
            assert len(ga) + len(gb) == 100  # each message to exactly one member
            assert set(ga) | set(gb) == {str(i).encode() for i in range(100)}
            assert ga
            assert gb


async def _ready(sub: BusSubscription) -> AsyncIterator[BusMessage]:
    while sub.qsize():
        yield await sub.__anext__()


async def test_reconnects_and_resubscribes_after_a_broker_restart(
    own_mosquitto: Mosquitto,
) -> None:
    topic = unique("restart")
    async with MqttBus(options(own_mosquitto.url, keepalive=2)) as bus:
        await bus.wait_connected(10)
        async with bus.subscribe(topic) as sub:
            await bus.publish(topic, b"before")
            assert [m.payload for m in await take(sub, 1)] == [b"before"]
            own_mosquitto.stop()
            pending = asyncio.create_task(bus.publish(topic, b"during"))  # waits for the broker
            await asyncio.sleep(0.5)
            own_mosquitto.start()
            await asyncio.wait_for(pending, 30)
            await bus.publish(topic, b"after")
            got = [m.payload for m in await take(sub, 2, within=30)]
            assert got == [b"during", b"after"]
            assert bus.connects >= 2


async def test_the_broker_never_hands_us_a_packet_over_the_payload_limit(bus: MqttBus) -> None:
    """A stranger's 10 MB message is dropped by the broker (MQTT 5 Maximum Packet Size in
    our CONNECT), so it never lands in this process's memory or subscription queues."""
    base = unique("huge")
    async with bus.subscribe(f"{base}/+") as sub:
        await bus.publish(f"{base}/a", b"x" * (10 * 1024 * 1024))
        await bus.publish(f"{base}/a", b"y" * (4 * 1024 * 1024))  # the wire limit passes
        await bus.publish(f"{base}/a", b"small")
        got = await take(sub, 2, within=30)
        assert [len(m.payload) for m in got] == [4 * 1024 * 1024, 5]


async def test_an_unread_subscription_holds_at_most_its_byte_bound(mqtt_url: str) -> None:
    """Issue 9: big messages to a subscription that is not reading are dropped past
    ``max_queued_bytes`` instead of piling up in memory."""
    base = unique("bytes")
    async with MqttBus(options(mqtt_url, max_queued_bytes=8 * 1024 * 1024)) as bus:
        await bus.wait_connected(10)
        async with bus.subscribe(f"{base}/+") as sub:
            for i in range(10):
                await bus.publish(f"{base}/a", bytes([i]) * (2 * 1024 * 1024))

            await bus.publish(f"{base}/a", b"")  # 0 bytes: fits; it marks the end
            for _ in range(1500):  # poll, bounded: the broker delivers in order
                if sub.qsize() + sub.dropped >= 11:
                    break
                await asyncio.sleep(0.02)
            assert sub.qsize() == 5
            assert sub.dropped == 6
            assert sub.queued_bytes == 8 * 1024 * 1024
