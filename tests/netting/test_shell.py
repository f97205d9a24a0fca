"""Netting rounds over a bus: in memory and over a real Mosquitto (``mqtt_url``)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence

import pytest

from chains.service.bus import Bus, BusMessage, MemoryBus, open_bus
from netting.protocol import Party, Phase, RoundSpec, compute_plain_netting, default_threshold
from netting.shell import RoundReport, run_netting, run_party
from netting.wire import TOPIC_PREFIX, decode_envelope, encode_envelope, max_payload, topic_for
from tests.netting.helpers import bank_keys, random_book


def new_spec(n: int, *, phase_s: float = 5.0, lead: float = 0.3) -> RoundSpec:
    keys = bank_keys(n)
    return RoundSpec(
        f"r-{uuid.uuid4().hex[:12]}",
        tuple(k.public_key for k in keys),
        default_threshold(n),
        time.time() + lead,
        phase_s,
    )


async def run_all(
    buses: Sequence[Bus], spec: RoundSpec, book: list[list[int]], who: Sequence[int]
) -> list[RoundReport]:
    keys = bank_keys(spec.n)
    async with asyncio.timeout(4 * spec.phase_s + 10):
        return list(
            await asyncio.gather(
                *(run_party(buses[i % len(buses)], spec, keys[i], book[i]) for i in who)
            )
        )


async def record(bus: Bus, into: list[BusMessage], ready: asyncio.Event) -> None:
    async with bus.subscribe(f"{TOPIC_PREFIX}/#") as sub:
        ready.set()
        async for msg in sub:
            into.append(msg)


def leaks(book: list[list[int]], payloads: Sequence[bytes]) -> list[str]:
    """Every obligation and position, in the encodings an observer would try."""
    found = []
    values = {v for row in book for v in row if v} | {
        abs(v) for v in compute_plain_netting(book) if v
    }
    for v in values:
        forms = [str(v).encode(), v.to_bytes(8, "little"), v.to_bytes(8, "big")]
        forms += [f.hex().encode() for f in forms[1:]]
        for p in payloads:
            if any(f in p for f in forms):
                found.append(str(v))
    return found


@pytest.mark.parametrize("n", [3, 5])
async def test_round_over_memory_bus_equals_plaintext_netting(n: int) -> None:
    book = random_book(random.Random(n), n)
    spec = new_spec(n)
    async with MemoryBus() as bus:
        reports = await run_all([bus], spec, book, range(n))
    for i, rep in enumerate(reports):
        assert rep.failure is None
        assert rep.result is not None
        assert rep.result.positions == compute_plain_netting(book)
        assert rep.result.own == compute_plain_netting(book)[i]


async def test_round_over_mosquitto_reveals_no_input_on_the_wire(mqtt_url: str) -> None:
    n = 4
    book = random_book(random.Random(11), n, high=10**9, density=1.0)
    spec = new_spec(n, lead=1.0)
    wire: list[BusMessage] = []
    buses = [open_bus(mqtt_url) for _ in range(n + 1)]
    for b in buses:
        await b.__aenter__()
    try:
        ready = asyncio.Event()
        observer = asyncio.create_task(record(buses[n], wire, ready))
        await ready.wait()
        reports = await run_all(buses[:n], spec, book, range(n))
        await asyncio.sleep(0.5)
        observer.cancel()
    finally:
        for b in buses:
            await b.__aexit__(None, None, None)
    assert all(r.result is not None for r in reports), [r.failure for r in reports]
    assert all(
        r.result is not None and r.result.positions == compute_plain_netting(book) for r in reports
    )
    # 4 shares, 4 (empty) complaints, 4 sums, each retained; then each bank clears its own
    cleared = [m for m in wire if not m.payload]
    wire = [m for m in wire if m.payload]
    assert len(wire) == 3 * n
    assert sorted(m.topic for m in cleared) == sorted(m.topic for m in wire)
    for msg in wire:
        assert decode_envelope(msg.topic, msg.payload, spec).round_id == spec.round_id
        assert len(msg.payload) <= max_payload(spec)
    assert leaks(book, [m.payload for m in wire]) == []
    # the check itself can fail: a payload carrying an amount in the clear is caught
    assert leaks(book, [b'{"owed":' + str(book[0][1]).encode() + b"}"])


async def test_dropout_after_sharing_completes_over_mosquitto(mqtt_url: str) -> None:
    n = 5  # t = 2
    book = random_book(random.Random(12), n)
    spec = new_spec(n, phase_s=1.5, lead=1.0)
    keys = bank_keys(n)
    async with open_bus(mqtt_url) as bus, open_bus(mqtt_url) as quitter_bus:

        async def quitter(i: int) -> None:
            # shares, then vanishes: a Party that is never fed again
            p = Party(spec, keys[i], book[i])
            await asyncio.sleep(max(0.0, spec.start - time.time()))
            for env in p.start(time.time()):
                await quitter_bus.publish(
                    topic_for(env.round_id, env.phase, env.sender), encode_envelope(env)
                )

        async with asyncio.timeout(4 * spec.phase_s + 10):
            results = await asyncio.gather(
                quitter(3),
                quitter(4),
                *(run_party(bus, spec, keys[i], book[i]) for i in range(3)),
            )
    for rep in results[2:]:
        assert isinstance(rep, RoundReport)
        assert rep.failure is None, rep.failure
        assert rep.result is not None
        assert rep.result.positions == compute_plain_netting(book)


async def test_a_bank_that_subscribes_after_the_start_catches_up_from_retained() -> None:
    n = 3
    book = random_book(random.Random(15), n)
    spec = new_spec(n, phase_s=5.0, lead=0.1)
    keys = bank_keys(n)
    async with MemoryBus() as bus:

        async def late() -> RoundReport:
            await asyncio.sleep(max(0.0, spec.start - time.time()) + 0.5)
            return await run_party(bus, spec, keys[2], book[2])

        async with asyncio.timeout(30):
            reports = await asyncio.gather(
                *(run_party(bus, spec, keys[i], book[i]) for i in range(2)), late()
            )
        # every bank cleared what it had retained
        async with bus.subscribe(f"{TOPIC_PREFIX}/#") as sub:
            assert sub.qsize() == 0
    for rep in reports:
        assert rep.result is not None, rep.failure
        assert rep.result.positions == compute_plain_netting(book)


async def test_hostile_messages_are_refused_and_the_round_completes() -> None:
    n = 3
    book = random_book(random.Random(13), n)
    spec = new_spec(n, lead=1.0)
    old = new_spec(n)
    keys = bank_keys(n)
    async with MemoryBus() as bus:

        async def stranger() -> None:
            # After every party has subscribed and before the round starts, so that each
            # party reads them before it can finish, however loaded the machine (a stranger
            # that published after the start lost the race to a fast round under CI).
            await asyncio.sleep(0.3)
            assert time.time() < spec.start, "the parties' round started before the stranger"
            share = topic_for(spec.round_id, Phase.SHARE, 1)
            await bus.publish(share, b"\x00not json")
            await bus.publish(share, b"x" * (max_payload(spec) + 1))
            # a signed share of another round, replayed onto this round's topic
            [env, *_] = Party(old, keys[1], book[1]).start(time.time())
            payload = encode_envelope(env).replace(old.round_id.encode(), spec.round_id.encode())
            await bus.publish(share, payload)

        async with asyncio.timeout(30):
            _, *reports = await asyncio.gather(
                stranger(), *(run_party(bus, spec, keys[i], book[i]) for i in range(n))
            )
    for rep in reports:
        assert rep.result is not None
        assert rep.result.positions == compute_plain_netting(book)
    refused = sum((sum(r.refused.values()) for r in reports), 0)
    assert refused >= 3 * 2  # the junk and the oversize, at both parties other than 1
    assert any("forged" in r.refused or "duplicate" in r.refused for r in reports)


async def test_a_party_missing_the_share_deadline_is_excluded_and_the_rest_net() -> None:
    n = 4
    book = random_book(random.Random(14), n, density=1.0)
    spec = new_spec(n, phase_s=0.6, lead=0.3)
    keys = bank_keys(n)
    async with MemoryBus() as bus, asyncio.timeout(30):
        reports = await asyncio.gather(
            *(run_netting(bus, spec, keys[i], book[i]) for i in (0, 1, 3))
        )
    sub = [[book[i][k] for k in (0, 1, 3)] for i in (0, 1, 3)]
    for rep in reports:
        assert rep.result is not None, rep.failure
        assert rep.parties == (0, 1, 3)
        assert rep.spec.round_id == f"{spec.round_id}.1"
        assert rep.result.positions == compute_plain_netting(sub)
