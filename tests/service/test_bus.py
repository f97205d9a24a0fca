"""The in-memory bus, topic rules, bus URLs and the backoff policy (no broker)."""

from __future__ import annotations

import asyncio
import random

import pytest

from chains.service.bus import (
    BadBusUrl,
    BadTopic,
    BusClosed,
    BusMessage,
    BusSubscription,
    MemoryBus,
    MqttBus,
    open_bus,
    parse_bus_url,
    topic_matches,
    validate_filter,
)
from chains.service.retry import Backoff


async def drain(sub: BusSubscription) -> list[BusMessage]:
    out = []
    while sub.qsize():
        out.append(await sub.__anext__())
    return out


# --- topics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),  # '#' also matches the parent level
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+", "a/b", True),
        ("+", "/a", False),
        ("+/a", "/a", True),
        ("#", "$SYS/load", False),
        ("+/load", "$SYS/load", False),
        ("$SYS/#", "$SYS/load", True),
        ("interlock/v1/chains/+/headers", "interlock/v1/chains/chain-a/headers", True),
        ("interlock/v1/chains/+/headers", "interlock/v1/chains/chain-a/events", False),
    ],
)
def test_topic_matches(flt: str, topic: str, expected: bool) -> None:
    assert topic_matches(flt, topic) is expected


@pytest.mark.parametrize(
    "flt", ["a/#/b", "a/b#", "a+/b", "", "$share/g", "$share//a", "$share/g+/a"]
)
def test_bad_filters_are_refused(flt: str) -> None:
    with pytest.raises(BadTopic):
        validate_filter(flt)


async def test_publish_to_a_wildcard_topic_is_refused() -> None:
    async with MemoryBus() as bus:
        for topic in ("a/+", "a/#", "", "a\x00b"):
            with pytest.raises(BadTopic):
                await bus.publish(topic, b"x")


# --- memory bus -----------------------------------------------------------------------


async def test_memory_bus_delivers_to_matching_subscriptions_in_order() -> None:
    async with MemoryBus() as bus, bus.subscribe("c/+/h") as s1, bus.subscribe("c/#") as s2:
        for i in range(3):
            await bus.publish("c/x/h", str(i).encode())
        await bus.publish("c/x/e", b"e")
        await bus.publish("d/x/h", b"nobody")
        assert [m.payload for m in await drain(s1)] == [b"0", b"1", b"2"]
        got = await drain(s2)
        assert [m.payload for m in got] == [b"0", b"1", b"2", b"e"]
        assert not any(m.retain for m in got)


async def test_memory_bus_retained_message_reaches_late_subscribers_and_can_be_cleared() -> None:
    async with MemoryBus() as bus:
        await bus.publish("s/a", b"old", retain=True)
        await bus.publish("s/a", b"new", retain=True)
        async with bus.subscribe("s/#") as sub:
            [m] = await drain(sub)
            assert m == BusMessage("s/a", b"new", True)
            await bus.publish("s/a", b"live", retain=True)
            [live] = await drain(sub)
            assert live == BusMessage("s/a", b"live", False)
        await bus.publish("s/a", b"", retain=True)  # empty retained payload clears it
        async with bus.subscribe("s/#") as late:
            assert await drain(late) == []


async def test_memory_bus_shared_subscription_gives_each_message_to_one_member() -> None:
    async with (
        MemoryBus() as bus,
        bus.subscribe("$share/g/w/#") as a,
        bus.subscribe("$share/g/w/#") as b,
        bus.subscribe("$share/other/w/#") as c,
        bus.subscribe("w/#") as plain,
    ):
        for i in range(10):
            await bus.publish(f"w/{i}", str(i).encode())
        ga, gb = await drain(a), await drain(b)
        assert len(ga) + len(gb) == 10
        assert ga
        assert gb
        assert {m.payload for m in ga} | {m.payload for m in gb} == {
            str(i).encode() for i in range(10)
        }
        assert len(await drain(c)) == 10  # another group gets everything too
        assert len(await drain(plain)) == 10


async def test_memory_bus_shared_subscription_gets_no_retained_messages() -> None:
    async with MemoryBus() as bus:
        await bus.publish("w/status", b"up", retain=True)
        async with bus.subscribe("$share/g/w/#") as sub:
            assert await drain(sub) == []


async def test_memory_bus_full_queue_drops_and_counts() -> None:
    async with MemoryBus(max_queued=3) as bus, bus.subscribe("q") as sub:
        for i in range(5):
            await bus.publish("q", bytes([i]))
        assert sub.dropped == 2
        assert [m.payload for m in await drain(sub)] == [b"\x00", b"\x01", b"\x02"]


async def test_memory_bus_close_ends_iteration_and_refuses_use() -> None:
    bus = MemoryBus()
    sub = bus.subscribe("x")
    await sub.start()
    received: list[BusMessage] = []

    async def consume() -> None:
        async for m in sub:
            received.append(m)

    task = asyncio.create_task(consume())
    await bus.publish("x", b"1")
    await bus.close()
    await asyncio.wait_for(task, 5)
    assert [m.payload for m in received] == [b"1"]
    with pytest.raises(BusClosed):
        await bus.publish("x", b"2")
    with pytest.raises(BusClosed):
        bus.subscribe("x")


async def test_unsubscribed_subscription_receives_nothing_more() -> None:
    async with MemoryBus() as bus:
        sub = bus.subscribe("x")
        async with sub:
            await bus.publish("x", b"1")
        await bus.publish("x", b"2")
        assert [m.payload async for m in sub] == [b"1"]


# --- URLs -----------------------------------------------------------------------------


def test_memory_url_is_the_in_memory_bus() -> None:
    assert parse_bus_url("memory://") is None
    assert isinstance(open_bus("memory://"), MemoryBus)


def test_mqtt_urls() -> None:
    o = parse_bus_url("mqtt://broker.example")
    assert o is not None
    assert (o.host, o.port, o.tls, o.tcp_nodelay) == (
        "broker.example",
        1883,
        False,
        True,
    )
    o = parse_bus_url("mqtts://relayer:s%40cret@10.0.0.5?ca=/etc/ca.pem&client_id=r1")
    assert o is not None
    assert (o.host, o.port, o.tls, o.username, o.password, o.ca_file, o.client_id) == (
        "10.0.0.5",
        8883,
        True,
        "relayer",
        "s@cret",
        "/etc/ca.pem",
        "r1",
    )
    assert "s@cret" not in repr(o)
    o = parse_bus_url("mqtt://127.0.0.1:18830/?keepalive=5&inflight=20&nodelay=0")
    assert o is not None
    assert (o.port, o.keepalive, o.max_inflight, o.tcp_nodelay) == (
        18830,
        5,
        20,
        False,
    )
    assert isinstance(open_bus("mqtt://127.0.0.1:1"), MqttBus)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "redis://localhost",
        "localhost:1883",
        "mqtt://",
        "mqtt://host:0",
        "mqtt://host:99999",
        "mqtt://host:port",
        "mqtt://host/some/path",
        "mqtt://host?colour=blue",
        "mqtt://host?ca=/x.pem",
        "mqtt://host?keepalive=soon",
        "mqtts://host?insecure=maybe",
        "memory://somewhere",
    ],
)
def test_bad_bus_urls_raise_one_typed_error(url: str) -> None:
    with pytest.raises(BadBusUrl) as err:
        parse_bus_url(url)
    assert "\n" not in str(err.value)


def test_bad_url_error_hides_the_password() -> None:
    with pytest.raises(BadBusUrl) as err:
        parse_bus_url("mqtt://user:hunter2@host/path")
    assert "hunter2" not in str(err.value)


# --- backoff --------------------------------------------------------------------------


def test_backoff_grows_exponentially_to_its_cap_with_bounded_jitter() -> None:
    policy = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.5, attempts=8)
    delays = list(policy.delays(random.Random(7)))
    assert len(delays) == 8
    bases = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for d, base in zip(delays, bases, strict=True):
        assert base * 0.5 <= d <= base


def test_backoff_without_jitter_is_exact_and_seeded_jitter_is_reproducible() -> None:
    exact = Backoff(initial=1, maximum=4, factor=2, jitter=0, attempts=4)
    assert list(exact) == [1, 2, 4, 4]
    jittered = Backoff(jitter=1.0, attempts=20)
    assert list(jittered.delays(random.Random(1))) == list(jittered.delays(random.Random(1)))
    assert len(set(jittered.delays(random.Random(1)))) > 1


def test_backoff_is_endless_by_default() -> None:
    it = Backoff().delays()
    assert all(next(it) <= Backoff().maximum for _ in range(1000))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"initial": 2, "maximum": 1},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"attempts": -1},
    ],
)
def test_backoff_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]


async def test_close_never_cancels_a_publish_in_flight() -> None:
    """MEASURED: cancelling a task inside aiomqtt's publish can hang on 3.11. The offline
    status at close is given ``seconds`` and then left to end on its own, never cancelled."""

    release = asyncio.Event()

    class StuckClient:
        cancelled = False

        async def publish(self, *args: object, **kwargs: object) -> None:
            try:
                await release.wait()  # the broker does not acknowledge in time
            except asyncio.CancelledError:
                StuckClient.cancelled = True
                raise

    from chains.service.bus import LastWill, MqttOptions

    bus = MqttBus(MqttOptions("127.0.0.1", will=LastWill("t/status", b"on", b"off")))
    bus._client = StuckClient()  # type: ignore[assignment]
    await asyncio.wait_for(bus.close(seconds=0.05), 10)
    await asyncio.sleep(0.05)
    assert not StuckClient.cancelled
    release.set()  # it ends by itself (aiomqtt's own publish timeout)
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    "url", ["mqtt://user:hunter2@[::1", "mqtt://[::1", "mqtts://u:hunter2@[x]:1"]
)
def test_a_url_urllib_cannot_split_is_a_bad_bus_url_without_the_password(url: str) -> None:
    with pytest.raises(BadBusUrl) as err:  # not urllib's bare ValueError (a CLI traceback)
        parse_bus_url(url)
    assert "hunter2" not in str(err.value)


async def test_a_subscription_queue_is_bounded_in_bytes_too() -> None:
    """Issue 9: the queue was bounded by message count only, so 60 messages of 4 MiB to a
    subscription that was not reading held 257 MiB. Past ``max_queued_bytes`` a message is
    dropped and counted, like one past the count bound."""
    async with MemoryBus(max_queued_bytes=10_000) as bus, bus.subscribe("a/+") as sub:
        for i in range(8):
            await bus.publish("a/b", bytes([i]) * 3_000)
        await bus.publish("a/b", b"small")  # still fits
        assert sub.dropped == 5
        assert sub.queued_bytes == 9_005
        got = await drain(sub)
        assert [m.payload[:1] for m in got] == [b"\x00", b"\x01", b"\x02", b"s"]
        assert sub.queued_bytes == 0
        await bus.publish("a/b", b"x" * 10_000)  # room again once read
        assert len(await drain(sub)) == 1


def test_open_bus_refuses_tls_files_that_do_not_exist(tmp_path: object) -> None:
    from pathlib import Path

    missing = Path(str(tmp_path)) / "ca.pem"
    url = f"mqtts://u:secret@127.0.0.1?ca={missing}"
    with pytest.raises(BadBusUrl) as info:
        open_bus(url)
    assert "ca file" in str(info.value)
    assert "secret" not in str(info.value)
    missing.write_text("x")
    assert open_bus(url) is not None  # exists: the handshake will judge its contents
    with pytest.raises(BadBusUrl, match="cert file"):
        open_bus(f"mqtts://127.0.0.1?ca={missing}&cert={missing}.nope")
