"""A stranger on the bus must not exhaust a subscriber: memory in bytes, work per message.

Each test replays an attack from issue 9 through the public surface (bus messages into
``ChainSubscriber.process``) and checks the bound that stops it, then that the genuine
stream still verifies.
"""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc

import orjson
import pytest

from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.handle import InProcessChain
from chains.service import subscriber as subscriber_module
from chains.service.bus import BusMessage, MemoryBus
from chains.service.subscriber import (
    EARLY_BYTES,
    ChainSubscriber,
    TokenBucket,
    TrustedState,
)
from chains.service.wire import (
    MalformedPayload,
    encode_events,
    encode_header,
    events_topic,
    headers_topic,
)
from chains.types import Block, ValidatorSet
from tests.service import test_subscriber
from tests.service.test_subscriber import Chain, feed

MiB = 1024 * 1024
chain = test_subscriber.chain  # the same fixture: a node driven by hand


def tiny_events(chain_id: str, height: int, n: int, salt: int) -> bytes:
    """A forged events message: ``n`` tiny events (no proofs) claiming block ``height``."""
    events = [
        {"index": i, "event": {"type": "x.y", "attributes": {}}, "proof": []} for i in range(n)
    ]
    return orjson.dumps(
        {
            "v": 1,
            "kind": "events",
            "chain_id": chain_id,
            "height": height,
            "block_hash": f"{salt:064x}",
            "event_count": n,
            "events": events,
        }
    )


class CountingHandle(InProcessChain):
    """The in-process handle, counting the reads a subscriber makes of the chain."""

    reads = 0

    async def get_block(self, height: int) -> Block | None:
        self.reads += 1
        return await super().get_block(height)


def counting_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = subscriber_module.decode_envelope

    def counted(env):  # type: ignore[no-untyped-def]
        calls.append(env.kind)
        return real(env)

    monkeypatch.setattr(subscriber_module, "decode_envelope", counted)
    return calls


async def test_forged_early_events_hold_at_most_their_bytes(chain: Chain) -> None:
    """Issue 9: ~63,500 tiny events per message for the next height were held decoded, at
    ~280 MiB a message. Now they are held raw, EARLY_BYTES in all."""
    [b1] = chain.blocks(1, txs=2)
    sub = ChainSubscriber(
        MemoryBus(),
        InProcessChain(chain.node),
        trusted=TrustedState.from_genesis(chain.dc.genesis),
    )
    payloads = [tiny_events(chain.dc.chain_id, 1, 17_000, salt) for salt in range(12)]
    assert all(MiB < len(p) < 2 * MiB for p in payloads)
    topic = events_topic(chain.dc.chain_id)
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for p in payloads:
            await sub.process(BusMessage(topic, p, False))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the payload bytes themselves are the caller's; what the subscriber adds is small
    assert held - base < 4 * MiB
    assert sub.stats.dropped_early >= len(payloads) - EARLY_BYTES // MiB
    # the genuine block still verifies; the forged early ones are rejected on its header
    got = await feed(sub, chain.msgs(b1))
    assert [(v.height, v.events) for v in got] == [(1, b1.events)]
    assert sub.stats.rejected["BadEventProof"] >= 1
    assert sub._early == {}


async def test_events_refused_on_cheap_checks_are_never_fully_decoded(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9: a 4 MiB message of tiny events cost over a second of CPU to decode even
    when then dropped as far ahead. Height window, duplicates, claimed block and counts
    are now checked on the parsed envelope, before the full decode."""
    blocks = chain.blocks(3, txs=1)
    sub = ChainSubscriber(
        MemoryBus(),
        InProcessChain(chain.node),
        trusted=TrustedState.from_genesis(chain.dc.genesis),
    )
    got = await feed(sub, [chain.header_msg(blocks[0])])  # height 1 verified, events awaited
    assert got == []
    calls = counting_decodes(monkeypatch)
    cid, topic = chain.dc.chain_id, events_topic(chain.dc.chain_id)
    far = tiny_events(cid, 1_000, 60_000, 1)
    assert len(far) > 3 * MiB
    wrong_block = tiny_events(cid, 1, 60_000, 2)  # the verified height, another block
    liar = orjson.loads(tiny_events(cid, 2, 100, 3))
    liar["event_count"] = 5  # more events than the block it claims has
    for p in (far, wrong_block, orjson.dumps(liar)):
        await sub.process(BusMessage(topic, p, False))
    assert calls == []
    assert sub.stats.dropped_early == 1
    assert sub.stats.rejected["BadEventProof"] == 1
    assert sub.stats.rejected["MalformedPayload"] == 1
    # the genuine stream: decoded as usual
    got = await feed(sub, [*chain.events_msgs(blocks[0]), *chain.msgs(blocks[1])])
    assert [v.height for v in got] == [1, 2]
    n = len(calls)
    # replays of what was yielded are duplicates, not decodes
    await feed(sub, chain.msgs(blocks[0]) + chain.msgs(blocks[1]))
    assert len(calls) == n


def test_an_events_count_over_event_count_is_malformed() -> None:
    from chains.service.wire import decode

    obj = orjson.loads(tiny_events("chain-a", 1, 3, 0))
    obj["event_count"] = 2
    with pytest.raises(MalformedPayload):
        decode(events_topic("chain-a"), orjson.dumps(obj))


def forged_far_header(chain: Chain, base: Block, height: int, signers: int) -> BusMessage:
    keys = [PrivateKey.derive("stranger", str(i)) for i in range(signers)]
    fake_set = ValidatorSet.of([(k.public_key, 10) for k in keys])
    header = dataclasses.replace(base.header, height=height, validators_hash=fake_set.hash)
    block = Block(header, sign_commit(header, keys), (), (), ())
    return BusMessage(headers_topic(chain.dc.chain_id), encode_header(block, fake_set), False)


async def test_unverifiable_far_headers_have_a_budget(chain: Chain) -> None:
    """Issue 9: a far-ahead header self-signed by made-up validators cost a 256-signature
    check and a chain read per replayed copy. Such work now spends a token unless it led
    to progress; without tokens the header is dropped unchecked (``stats.deferred``)."""
    blocks = chain.blocks(2, txs=1)
    now = [0.0]
    handle = CountingHandle(chain.node)
    sub = ChainSubscriber(
        MemoryBus(),
        handle,
        trusted=TrustedState.after(blocks[1].header),
        unverified_per_s=1.0,
        unverified_burst=3,
        clock=lambda: now[0],
    )
    forged = forged_far_header(chain, blocks[1], 50, signers=4)
    for _ in range(40):
        await sub.process(forged)
    assert handle.reads == 3  # one chain read for each token, none after
    assert sub.stats.deferred == 37
    assert sub.stats.rejected == {}  # dropped unchecked, not rejected
    now[0] += 2.0  # two tokens back
    for _ in range(5):
        await sub.process(forged)
    assert handle.reads == 5
    assert sub.stats.deferred == 40
    # the next height is always checked against the trusted head, budget or not
    [b3] = chain.blocks(1, txs=1)
    got = await feed(sub, chain.msgs(b3))
    assert [v.height for v in got] == [3]


async def test_a_far_header_that_leads_to_progress_costs_no_budget(chain: Chain) -> None:
    blocks = chain.blocks(12, txs=0)
    sub = ChainSubscriber(
        MemoryBus(),
        InProcessChain(chain.node),
        trusted=TrustedState.from_genesis(chain.dc.genesis),
        unverified_per_s=0.0,  # never refilled
        unverified_burst=1,
        clock=lambda: 0.0,
    )
    heights: list[int] = []
    for b in blocks[2::3]:  # every third height: a gap before each
        heights += [v.height for v in await feed(sub, chain.msgs(b))]
    assert heights == list(range(1, 13))
    assert sub.stats.deferred == 0


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=2)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(0.4) is False  # 0.8 of a token
    assert bucket.take(0.5) is True
    bucket.give_back()
    assert bucket.take(0.5) is True
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]  # burst caps


@pytest.mark.parametrize("bound", ["PARTS_EVENTS", "PARTS_BYTES"])
async def test_parts_held_for_the_rest_of_their_block_are_bounded(
    chain: Chain, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    """Parts of big blocks are held unchecked until their block is complete, within
    PARTS_EVENTS and PARTS_BYTES in all; a part past either is checked at once by its
    audit paths, so the bound costs CPU, never a block."""
    blocks = chain.blocks(3, txs=20)
    topic = events_topic(chain.dc.chain_id)
    parts = {b.height: encode_events(b, chunk_bytes=2000) for b in blocks}
    first = parts[1][0]
    limit = len(orjson.loads(first)["events"]) + 1 if bound == "PARTS_EVENTS" else len(first) + 10
    monkeypatch.setattr(subscriber_module, bound, limit)
    paths = test_subscriber.counting_path_checks(monkeypatch)
    sub = ChainSubscriber(
        MemoryBus(),
        InProcessChain(chain.node),
        trusted=TrustedState.from_genesis(chain.dc.genesis),
    )
    msgs = [
        m
        for b in blocks
        for m in [chain.header_msg(b), *(BusMessage(topic, p, False) for p in parts[b.height])]
    ]
    held_most = 0
    got = []
    for m in msgs:
        await sub.process(m)
        got += sub.take_ready()
        assert sub._parts_events <= subscriber_module.PARTS_EVENTS
        assert sub._parts_bytes <= subscriber_module.PARTS_BYTES
        held_most = max(held_most, sub._parts_events)
    assert held_most > 0
    assert paths != []  # what did not fit was checked by its paths
    assert [(v.height, v.events, v.filled) for v in got] == [
        (b.height, b.events, False) for b in blocks
    ]
    assert sub.stats.rejected == {}
    assert (sub._parts, sub._parts_bytes, sub._parts_events) == ({}, 0, 0)


async def test_forged_parts_never_hold_more_than_their_block(chain: Chain) -> None:
    """A stranger replaying forged copies of a block's parts: a copy that overlaps a
    held part is checked by its paths and refused, never held beside it."""
    [b1] = chain.blocks(1, txs=20)
    topic = events_topic(chain.dc.chain_id)
    raw = encode_events(b1, chunk_bytes=2000)
    sub = ChainSubscriber(
        MemoryBus(),
        InProcessChain(chain.node),
        trusted=TrustedState.from_genesis(chain.dc.genesis),
    )
    await sub.process(chain.header_msg(b1))
    await sub.process(BusMessage(topic, raw[0], False))
    held = (sub._parts_events, sub._parts_bytes)
    for salt in range(20):
        forged = test_subscriber.forged_part(raw[0], shift=salt % 3)
        await sub.process(BusMessage(topic, forged, False))
        assert (sub._parts_events, sub._parts_bytes) == held
    assert sub.stats.rejected == {"BadEventProof": 20}
    got = await feed(sub, [BusMessage(topic, p, False) for p in raw[1:]])
    assert [(v.height, v.events, v.filled) for v in got] == [(1, b1.events, False)]
