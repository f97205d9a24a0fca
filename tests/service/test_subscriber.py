"""The verifying subscriber: what it accepts, what it rejects, how it fills gaps.

Blocks are produced by hand (``node.produce_block()``) so every scenario is exact; the
subscriber gets bus messages through ``process`` and hands out what verified.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.devnet import DevnetChain
from chains.handle import InProcessChain
from chains.node import Node
from chains.service.bus import BusMessage, MemoryBus
from chains.service.subscriber import (
    ChainSubscriber,
    TrustedState,
    VerifiedBlock,
    validate_event,
    validate_next_header,
)
from chains.service.wire import (
    BadEventProof,
    MalformedPayload,
    PayloadTooLarge,
    SignedHeader,
    UnknownTopic,
    UnsupportedVersion,
    UntrustedHeader,
    WireError,
    WrongChain,
    encode_events,
    encode_header,
    events_topic,
    headers_topic,
)
from chains.types import Block, Tx, ValidatorSet
from tests.conftest import devnet_chain, open_node, transfer


class Chain:
    """A node driven by hand, with helpers that make its bus messages."""

    def __init__(self, dc: DevnetChain, node: Node) -> None:
        self.dc, self.node = dc, node
        self.nonce = 0

    def block(self, txs: int = 0) -> Block:
        for _ in range(txs):
            self.node.submit_nowait(transfer(self.dc, self.nonce))
            self.nonce += 1
        return self.node.produce_block()

    def blocks(self, n: int, txs: int = 2) -> list[Block]:
        return [self.block(txs) for _ in range(n)]

    def vals(self, block: Block) -> ValidatorSet:
        v = self.node.get_validators(block.height)
        assert v is not None
        return v

    def header_msg(self, block: Block) -> BusMessage:
        return BusMessage(
            headers_topic(block.header.chain_id), encode_header(block, self.vals(block)), False
        )

    def events_msgs(self, block: Block) -> list[BusMessage]:
        topic = events_topic(block.header.chain_id)
        return [BusMessage(topic, p, False) for p in encode_events(block)]

    def msgs(self, block: Block) -> list[BusMessage]:
        return [self.header_msg(block), *self.events_msgs(block)]


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    dc = devnet_chain()
    node = open_node(dc, tmp_path)
    yield Chain(dc, node)
    node.store.close()


def subscriber(chain: Chain, trusted: TrustedState | None = None) -> ChainSubscriber:
    if trusted is None:
        trusted = TrustedState.from_genesis(chain.dc.genesis)
    return ChainSubscriber(MemoryBus(), InProcessChain(chain.node), trusted=trusted)


async def feed(sub: ChainSubscriber, msgs: list[BusMessage]) -> list[VerifiedBlock]:
    for m in msgs:
        await sub.process(m)
    return sub.take_ready()


def mutate(payload: bytes, change: object) -> bytes:
    obj = orjson.loads(payload)
    change(obj)  # type: ignore[operator]
    return orjson.dumps(obj)


# --- the happy path -------------------------------------------------------------------


async def test_verifies_every_height_in_order_with_its_events(chain: Chain) -> None:
    blocks = chain.blocks(5, txs=3)
    sub = subscriber(chain)
    got = await feed(sub, [m for b in blocks for m in chain.msgs(b)])
    assert [v.height for v in got] == [1, 2, 3, 4, 5]
    for v, b in zip(got, blocks, strict=True):
        assert v.header == b.header
        assert v.events == b.events
        assert not v.filled
    assert sub.trusted == TrustedState.after(blocks[-1].header)
    assert sub.stats.rejected == {}


async def test_duplicates_are_yielded_once(chain: Chain) -> None:
    blocks = chain.blocks(3)
    sub = subscriber(chain)
    msgs = [m for b in blocks for m in chain.msgs(b)]
    got = await feed(sub, msgs + msgs + msgs[:2])
    assert [v.height for v in got] == [1, 2, 3]
    assert sub.stats.duplicates == len(msgs) + 2


async def test_events_before_their_header_are_held_then_verified(chain: Chain) -> None:
    [b1, b2] = chain.blocks(2, txs=4)
    sub = subscriber(chain)
    msgs = [*chain.events_msgs(b1), *chain.events_msgs(b2), chain.header_msg(b1)]
    msgs.append(chain.header_msg(b2))
    got = await feed(sub, msgs)
    assert [(v.height, len(v.events), v.filled) for v in got] == [(1, 4, False), (2, 4, False)]


async def test_events_split_over_several_messages_are_joined(chain: Chain) -> None:
    [b1] = chain.blocks(1, txs=40)
    sub = subscriber(chain)
    parts = encode_events(b1, chunk_bytes=2000)
    assert len(parts) > 3
    topic = events_topic(b1.header.chain_id)
    msgs = [chain.header_msg(b1), *(BusMessage(topic, p, False) for p in reversed(parts))]
    [v] = await feed(sub, msgs)
    assert v.events == b1.events


def counting_path_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the audit-path checks the subscriber makes (one per event checked so)."""
    from chains.service import subscriber as subscriber_module

    calls: list[int] = []
    real = subscriber_module.verify_inclusion

    def counted(leaf, index, size, path, root):  # type: ignore[no-untyped-def]
        calls.append(index)
        return real(leaf, index, size, path, root)

    monkeypatch.setattr(subscriber_module, "verify_inclusion", counted)
    return calls


def garbage_paths(payload: bytes) -> bytes:
    def change(o: dict) -> None:  # type: ignore[type-arg]
        for e in o["events"]:
            e["proof"] = ["cd" * 32] * len(e["proof"])

    return mutate(payload, change)


async def test_a_block_in_parts_is_checked_with_one_tree_once_all_are_in(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block over one message's size comes in parts; each is held until the others are
    in, then one tree over all their leaves is compared with ``event_root``: no event is
    checked by its audit path, so even garbage there changes nothing."""
    [b1] = chain.blocks(1, txs=40)
    parts = encode_events(b1, chunk_bytes=2000)
    assert len(parts) > 3
    topic = events_topic(b1.header.chain_id)
    paths = counting_path_checks(monkeypatch)
    sub = subscriber(chain)
    msgs = [BusMessage(topic, garbage_paths(p), False) for p in reversed(parts)]
    [v] = await feed(sub, [chain.header_msg(b1), *msgs[:1], *msgs])  # one part twice
    assert v.events == b1.events
    assert not v.filled
    assert [p.proof for p in v.proofs] == [p.proof for p in b1.prove_events(range(len(b1.events)))]
    assert paths == []
    assert sub.stats.joined == 1
    assert sub.stats.rejected == {}
    assert (sub._parts, sub._parts_bytes, sub._parts_events) == ({}, 0, 0)


def forged_part(payload: bytes, shift: int = 0) -> bytes:
    """A part with its first event altered and, with ``shift``, its indices moved."""

    def change(o: dict) -> None:  # type: ignore[type-arg]
        o["events"][0]["event"]["attributes"]["amount"] = 10**9
        for e in o["events"]:
            e["index"] += shift

    return mutate(payload, change)


@pytest.mark.parametrize(
    "scenario",
    [
        "forged last part completes the block",
        "forged copy first",
        "forged copy between",
        "forged part across two genuine ones",
    ],
)
async def test_a_forged_part_is_refused_and_the_genuine_parts_are_kept(
    chain: Chain, scenario: str
) -> None:
    """Whatever the order, a forged part is refused (counted once) and the genuine parts
    make the block, from the bus alone: the forged one never makes an honest one drop."""
    [b1, b2] = chain.blocks(2, txs=20)
    topic = events_topic(chain.dc.chain_id)
    raw = encode_events(b1, chunk_bytes=2000)
    assert len(raw) >= 3
    parts = [BusMessage(topic, p, False) for p in raw]
    first = orjson.loads(raw[1])["events"][0]["index"]
    if scenario == "forged last part completes the block":
        forged = BusMessage(topic, forged_part(raw[-1]), False)
        msgs = [*parts[:-1], forged, parts[-1]]
    elif scenario == "forged copy first":
        forged = BusMessage(topic, forged_part(raw[0]), False)
        msgs = [forged, *parts]
    elif scenario == "forged copy between":
        forged = BusMessage(topic, forged_part(raw[1]), False)
        msgs = [parts[0], forged, *parts[1:]]
    else:
        forged = BusMessage(topic, forged_part(raw[0], shift=first // 2), False)
        msgs = [forged, *reversed(parts)]
    sub = subscriber(chain)
    got = await feed(sub, [chain.header_msg(b1), *msgs, *chain.msgs(b2)])
    assert [(v.height, v.filled) for v in got] == [(1, False), (2, False)]
    assert got[0].events == b1.events
    for p in got[0].proofs:
        validate_event(got[0].header, p)
    assert sub.stats.rejected == {"BadEventProof": 1}
    assert (sub._parts, sub._parts_bytes, sub._parts_events) == ({}, 0, 0)


async def test_parts_of_a_block_filled_from_the_chain_are_let_go(chain: Chain) -> None:
    """A part whose block never completes on the bus is dropped when the block is read
    from the chain (once the next header verified)."""
    [b1, b2] = chain.blocks(2, txs=20)
    topic = events_topic(chain.dc.chain_id)
    parts = [BusMessage(topic, p, False) for p in encode_events(b1, chunk_bytes=2000)]
    sub = subscriber(chain)
    assert await feed(sub, [chain.header_msg(b1), parts[0]]) == []
    assert sub._parts_events > 0
    assert sub._parts_bytes == len(parts[0].payload)
    got = await feed(sub, chain.msgs(b2))
    assert [(v.height, v.filled) for v in got] == [(1, True), (2, False)]
    assert (sub._parts, sub._parts_bytes, sub._parts_events) == ({}, 0, 0)


@pytest.mark.parametrize("followed", ["bank.transfer", "htlc.locked"])
async def test_a_filter_yields_only_the_events_followed_and_checks_all(
    chain: Chain, followed: str
) -> None:
    [b1, b2] = chain.blocks(2, txs=6)
    sub = ChainSubscriber(
        MemoryBus(),
        InProcessChain(chain.node),
        trusted=TrustedState.from_genesis(chain.dc.genesis),
        want=lambda t: t == followed,
    )
    topic = events_topic(chain.dc.chain_id)
    # b2's events in parts: each part is checked by the audit paths it carries, and an
    # altered event is refused whether it is followed or not
    parts = [BusMessage(topic, p, False) for p in encode_events(b2, chunk_bytes=400)]
    assert len(parts) > 1

    def bad_event(o: dict) -> None:  # type: ignore[type-arg]
        o["events"][0]["event"]["attributes"]["amount"] = 10**9

    forged = BusMessage(topic, mutate(parts[0].payload, bad_event), False)
    got = await feed(sub, [*chain.msgs(b1), chain.header_msg(b2), forged, *parts])
    assert sub.stats.rejected == {"BadEventProof": 1}
    assert [v.height for v in got] == [1, 2]
    for v, b in zip(got, [b1, b2], strict=True):
        kept = [(i, e) for i, e in enumerate(b.events) if e.type == followed]
        assert [(p.index, p.event) for p in v.proofs] == kept
        for p in v.proofs:
            validate_event(v.header, p)  # raises if not
    assert sum(len(v.proofs) for v in got) == (12 if followed == "bank.transfer" else 0)


async def test_a_whole_block_is_proven_by_its_root_and_its_carried_paths_unused(
    chain: Chain,
) -> None:
    """A message with every event of its block is checked with one tree: the audit paths
    it carries are not read, so garbage there changes nothing, and the proofs yielded
    are the subscriber's own; an altered event is refused (see the hostile cases)."""
    [b1] = chain.blocks(1, txs=5)
    [events] = encode_events(b1)
    o = orjson.loads(events)
    for e in o["events"]:
        e["proof"] = ["cd" * 32] * len(e["proof"])
    msg = BusMessage(events_topic(chain.dc.chain_id), orjson.dumps(o), False)
    sub = subscriber(chain)
    [v] = await feed(sub, [chain.header_msg(b1), msg])
    assert v.events == b1.events
    assert [p.proof for p in v.proofs] == [p.proof for p in b1.prove_events(range(len(b1.events)))]
    assert sub.stats.rejected == {}


async def test_follows_a_validator_set_change(chain: Chain) -> None:
    gov = chain.dc.accounts["gov"]
    v0 = chain.dc.validator_keys[0].public_key
    change = Tx.create(
        gov, chain.dc.chain_id, 0, "validators", "set_power", {"public_key": v0.hex(), "power": 40}
    )
    chain.node.submit_nowait(change)
    blocks = [chain.block(), *chain.blocks(3)]
    assert blocks[0].header.next_validators_hash != blocks[0].header.validators_hash
    sub = subscriber(chain)
    got = await feed(sub, [m for b in blocks for m in chain.msgs(b)])
    assert [v.height for v in got] == [1, 2, 3, 4]
    assert got[1].validators.by_key[v0] == 40  # block 2 is signed by the new set
    assert sub.stats.rejected == {}


# --- hostile payloads -----------------------------------------------------------------


def hostile_cases(
    chain: Chain, b: Block, eb: Block, other: Chain
) -> list[tuple[str, BusMessage, type]]:
    """Hostile headers in the place of ``b``, hostile events in the place of ``eb``'s."""
    h_topic, e_topic = headers_topic(chain.dc.chain_id), events_topic(chain.dc.chain_id)
    header = encode_header(b, chain.vals(b))
    [events] = encode_events(eb)

    def sig_flip(o: dict) -> None:  # type: ignore[type-arg]
        s = o["commit"]["signatures"][0]["signature"]
        o["commit"]["signatures"][0]["signature"] = ("0" if s[0] != "0" else "1") + s[1:]

    def root_swap(o: dict) -> None:  # type: ignore[type-arg]
        o["header"]["state_root"] = "ab" * 32

    def bad_event(o: dict) -> None:  # type: ignore[type-arg]
        o["events"][0]["event"]["attributes"]["amount"] = 10**9

    def other_block(o: dict) -> None:  # type: ignore[type-arg]
        o["block_hash"] = "ef" * 32

    def lie_count(o: dict) -> None:  # type: ignore[type-arg]
        o["event_count"] = o["event_count"] + 1

    # A header signed by a stranger's validators, consistent with itself.
    strangers = [PrivateKey.derive("stranger", str(i)) for i in range(4)]
    fake_set = ValidatorSet.of([(k.public_key, 10) for k in strangers])
    fake_header = dataclasses.replace(b.header, validators_hash=fake_set.hash)
    fake = Block(fake_header, sign_commit(fake_header, strangers), b.txs, b.receipts, b.events)
    ob = other.block()
    other_header = encode_header(ob, other.vals(ob))

    return [
        ("garbage", BusMessage(h_topic, b"\xff\x00 not json at all", False), MalformedPayload),
        ("truncated", BusMessage(h_topic, header[: len(header) // 2], False), MalformedPayload),
        ("array", BusMessage(h_topic, b"[1,2,3]", False), MalformedPayload),
        ("empty", BusMessage(h_topic, b"", False), MalformedPayload),
        (
            "wrong version",
            BusMessage(h_topic, mutate(header, lambda o: o.update(v=2)), False),
            UnsupportedVersion,
        ),
        (
            "no version",
            BusMessage(h_topic, mutate(header, lambda o: o.pop("v")), False),
            UnsupportedVersion,
        ),
        (
            "extra key",
            BusMessage(h_topic, mutate(header, lambda o: o.update(extra=1)), False),
            MalformedPayload,
        ),
        (
            "10 MB",
            BusMessage(h_topic, b'{"v":1,"pad":"' + b"x" * (10 * 1024 * 1024) + b'"}', False),
            PayloadTooLarge,
        ),
        ("forged signature", BusMessage(h_topic, mutate(header, sig_flip), False), UntrustedHeader),
        ("altered header", BusMessage(h_topic, mutate(header, root_swap), False), UntrustedHeader),
        (
            "stranger validators",
            BusMessage(h_topic, encode_header(fake, fake_set), False),
            UntrustedHeader,
        ),
        ("other chain's header", BusMessage(h_topic, other_header, False), WrongChain),
        (
            "unknown kind",
            BusMessage(f"interlock/v1/chains/{chain.dc.chain_id}/blocks", header, False),
            UnknownTopic,
        ),
        ("altered event", BusMessage(e_topic, mutate(events, bad_event), False), BadEventProof),
        ("other block", BusMessage(e_topic, mutate(events, other_block), False), BadEventProof),
        ("wrong count", BusMessage(e_topic, mutate(events, lie_count), False), BadEventProof),
    ]


async def test_hostile_payloads_are_rejected_typed_and_change_nothing(
    chain: Chain, tmp_path: Path
) -> None:
    other = Chain(devnet_chain("chain-b"), open_node(devnet_chain("chain-b"), tmp_path / "b"))
    [b1, b2, b3] = chain.blocks(3, txs=3)
    sub = subscriber(chain)
    assert [v.height for v in await feed(sub, chain.msgs(b1))] == [1]
    # b2's header verified, its events still awaited: the most state a payload could spoil.
    assert await feed(sub, [chain.header_msg(b2)]) == []
    cases = hostile_cases(chain, b3, b2, other)
    for name, msg, error in cases:
        before = (sub.trusted, sub.height, dict(sub._got), dict(sub._headers))
        rejected_before = sub.stats.rejected[error.__name__]
        assert await feed(sub, [msg]) == [], name
        assert sub.stats.rejected[error.__name__] == rejected_before + 1, name
        assert (sub.trusted, sub.height, dict(sub._got), dict(sub._headers)) == before, name
    assert sum(sub.stats.rejected.values()) == len(cases)
    # and the genuine stream goes on
    got = await feed(sub, [*chain.events_msgs(b2), *chain.msgs(b3)])
    assert [(v.height, v.filled) for v in got] == [(2, False), (3, False)]
    other.node.store.close()


@pytest.mark.parametrize("index", [0, 1, 2, 3, 5, 6, 9])
async def test_each_hostile_payload_raises_its_typed_error_from_the_pure_checks(
    chain: Chain, tmp_path: Path, index: int
) -> None:
    """The same payloads through decode + validate_next_header directly."""
    from chains.service.wire import decode

    other = Chain(devnet_chain("chain-b"), open_node(devnet_chain("chain-b"), tmp_path / "b"))
    [b1, b2] = chain.blocks(2)
    trusted = TrustedState.after(b1.header)
    _, msg, error = hostile_cases(chain, b2, b2, other)[index]

    def check() -> None:
        item = decode(msg.topic, msg.payload)
        assert isinstance(item, SignedHeader)
        validate_next_header(trusted, item)

    with pytest.raises(error):
        check()
    other.node.store.close()


# --- gaps -----------------------------------------------------------------------------


async def test_a_lost_height_is_filled_through_the_chain_handle(chain: Chain) -> None:
    blocks = chain.blocks(5, txs=2)
    sub = subscriber(chain)
    msgs = [m for b in blocks if b.height != 3 for m in chain.msgs(b)]
    got = await feed(sub, msgs)
    assert [(v.height, v.filled) for v in got] == [
        (1, False),
        (2, False),
        (3, True),
        (4, False),
        (5, False),
    ]
    assert got[2].events == blocks[2].events
    assert sub.stats.filled == 1


async def test_lost_events_are_fetched_once_the_next_header_verifies(chain: Chain) -> None:
    blocks = chain.blocks(4, txs=2)
    sub = subscriber(chain)
    msgs = [chain.header_msg(blocks[0]), *chain.msgs(blocks[1]), *chain.msgs(blocks[2])]
    msgs += chain.msgs(blocks[3])
    got = await feed(sub, msgs)
    assert [(v.height, v.filled) for v in got] == [(1, True), (2, False), (3, False), (4, False)]
    assert got[0].events == blocks[0].events


async def test_starting_from_genesis_fills_history_the_bus_never_carried(chain: Chain) -> None:
    blocks = chain.blocks(6)
    sub = subscriber(chain)
    got = await feed(sub, chain.msgs(blocks[-1]))
    assert [v.height for v in got] == [1, 2, 3, 4, 5, 6]
    assert [v.filled for v in got] == [True] * 5 + [False]


async def test_without_configured_trust_it_anchors_on_the_chains_own_header(chain: Chain) -> None:
    blocks = chain.blocks(4)
    sub = ChainSubscriber(MemoryBus(), InProcessChain(chain.node))
    got = await feed(sub, chain.msgs(blocks[2]) + chain.msgs(blocks[3]))
    assert [v.height for v in got] == [3, 4]


async def test_a_forged_first_header_does_not_become_the_anchor(chain: Chain) -> None:
    [b1] = chain.blocks(1)
    strangers = [PrivateKey.derive("stranger", str(i)) for i in range(4)]
    fake_set = ValidatorSet.of([(k.public_key, 10) for k in strangers])
    fake_header = dataclasses.replace(b1.header, validators_hash=fake_set.hash)
    fake = Block(fake_header, sign_commit(fake_header, strangers), (), (), ())
    sub = ChainSubscriber(MemoryBus(), InProcessChain(chain.node))
    msg = BusMessage(headers_topic(chain.dc.chain_id), encode_header(fake, fake_set), False)
    assert await feed(sub, [msg]) == []
    assert sub.trusted is None
    assert sub.stats.rejected["UntrustedHeader"] == 1
    assert [v.height for v in await feed(sub, chain.msgs(b1))] == [1]


async def test_with_a_silent_bus_it_follows_the_chain_through_the_handle(chain: Chain) -> None:
    chain.blocks(3)
    async with MemoryBus() as bus:
        sub = ChainSubscriber(
            bus,
            InProcessChain(chain.node),
            trusted=TrustedState.from_genesis(chain.dc.genesis),
            idle_timeout=0.05,
        )
        async with sub:

            async def first_three() -> list[int]:
                out = []
                async for v in sub:
                    out.append(v.height)
                    if v.height == 3:
                        return out
                return out

            assert await asyncio.wait_for(first_three(), 10) == [1, 2, 3]


def test_trust_must_be_for_the_handles_chain(chain: Chain, tmp_path: Path) -> None:
    other = devnet_chain("chain-b")
    with pytest.raises(WrongChain):
        ChainSubscriber(
            MemoryBus(),
            InProcessChain(chain.node),
            trusted=TrustedState.from_genesis(other.genesis),
        )


def test_every_rejection_is_a_wire_error() -> None:
    for cls in (
        BadEventProof,
        MalformedPayload,
        PayloadTooLarge,
        UnknownTopic,
        UnsupportedVersion,
        UntrustedHeader,
        WrongChain,
    ):
        assert issubclass(cls, WireError)


async def test_events_ahead_of_their_headers_are_held_only_near_the_head(chain: Chain) -> None:
    blocks = chain.blocks(30, txs=1)
    sub = subscriber(chain)
    far = [m for b in blocks[12:] for m in chain.events_msgs(b)]  # beyond head + 8
    assert await feed(sub, far) == []
    assert sub.stats.dropped_early == len(far)
    assert sub._early == {}
    flood = chain.events_msgs(blocks[1]) * 100  # near the head, but too many
    await feed(sub, flood)
    assert sum(len(v) for v in sub._early.values()) == 64
    got = await feed(sub, [m for b in blocks[:5] for m in chain.msgs(b)])
    assert [v.height for v in got] == [1, 2, 3, 4, 5]


async def test_trust_can_start_from_the_chains_own_header(chain: Chain) -> None:
    from chains.service.subscriber import trusted_state_from_handle

    blocks = chain.blocks(4)
    trusted = await trusted_state_from_handle(InProcessChain(chain.node), 2)
    assert trusted == TrustedState.after(blocks[1].header)
    sub = subscriber(chain, trusted)
    got = await feed(sub, [m for b in blocks for m in chain.msgs(b)])
    assert [v.height for v in got] == [3, 4]
    with pytest.raises(UntrustedHeader):
        await trusted_state_from_handle(InProcessChain(chain.node), 99)


async def test_stranger_chatter_does_not_stop_the_idle_fill(chain: Chain) -> None:
    """Garbage on the chain's topics more often than ``idle_timeout`` must not keep the
    subscriber from following the chain through the handle while the publisher is silent."""
    chain.blocks(3)
    async with MemoryBus() as bus:
        sub = ChainSubscriber(
            bus,
            InProcessChain(chain.node),
            trusted=TrustedState.from_genesis(chain.dc.genesis),
            idle_timeout=0.05,
        )

        async def chatter() -> None:
            while True:
                await bus.publish(headers_topic(chain.dc.chain_id), b"{not json")
                await asyncio.sleep(0.005)

        async with sub:
            stranger = asyncio.create_task(chatter())

            async def first_three() -> list[int]:
                out = []
                async for v in sub:
                    out.append(v.height)
                    if v.height == 3:
                        return out
                return out

            try:
                assert await asyncio.wait_for(first_three(), 10) == [1, 2, 3]
            finally:
                stranger.cancel()
        assert sub.stats.rejected["MalformedPayload"] > 0


async def test_a_long_fill_is_handed_out_in_bounded_batches(chain: Chain) -> None:
    """Trusting the genesis of a long chain must not read the whole history into memory
    before the first block is handed out: a fill stops at ``max_pending`` ready blocks."""
    blocks = chain.blocks(40, txs=0)
    sub = ChainSubscriber(
        MemoryBus(),
        InProcessChain(chain.node),
        trusted=TrustedState.from_genesis(chain.dc.genesis),
        max_pending=8,
    )
    heights: list[int] = []
    for _ in range(40):
        got = await feed(sub, chain.msgs(blocks[-1]))  # the head's header, again and again
        assert len(got) <= 8
        heights += [v.height for v in got]
        if heights and heights[-1] == 40:
            break
    assert heights == list(range(1, 41))


async def test_a_fill_cut_short_by_the_bound_goes_on_without_waiting_for_idle(
    chain: Chain,
) -> None:
    blocks = chain.blocks(30, txs=0)
    async with MemoryBus() as bus:
        sub = ChainSubscriber(
            bus,
            InProcessChain(chain.node),
            trusted=TrustedState.from_genesis(chain.dc.genesis),
            idle_timeout=3600,  # never: only the one header below starts the fill
            max_pending=4,
        )
        async with sub:
            msg = chain.header_msg(blocks[-1])
            await bus.publish(msg.topic, msg.payload)

            async def upto_30() -> list[int]:
                out = []
                async for v in sub:
                    out.append(v.height)
                    if v.height == 30:
                        return out
                return out

            assert await asyncio.wait_for(upto_30(), 10) == list(range(1, 31))


async def test_before_any_trust_no_events_are_held(chain: Chain) -> None:
    """With no trusted header yet there is no head to bound "near" by: a stranger's events
    for made-up far heights would stay held forever. None are held; the anchor block comes
    whole from the handle anyway."""
    blocks = chain.blocks(3, txs=2)
    sub = ChainSubscriber(MemoryBus(), InProcessChain(chain.node))
    early = chain.events_msgs(blocks[2]) + chain.events_msgs(blocks[0])
    assert await feed(sub, early) == []
    assert sub._early == {}
    assert sub.stats.dropped_early == len(early)
    got = await feed(sub, chain.msgs(blocks[0]) + chain.msgs(blocks[1]) + chain.msgs(blocks[2]))
    assert [(v.height, v.events) for v in got] == [(b.height, b.events) for b in blocks]


async def test_the_idle_fill_reads_only_heights_overdue_since_the_last_check(
    chain: Chain,
) -> None:
    """A height the chain committed after the last idle check may still be on its way
    over the bus (a block interval longer than ``idle_timeout``, or a reader busy with
    the messages before it): reading it from the handle too paid for it twice. Only the
    heights the chain already had one idle period ago are filled."""
    chain.blocks(2)
    sub = subscriber(chain)
    await sub._on_idle()
    assert sub.take_ready() == []
    assert sub.stats.filled == 0
    chain.blocks(1)
    await sub._on_idle()
    assert [v.height for v in sub.take_ready()] == [1, 2]
    await sub._on_idle()
    assert [v.height for v in sub.take_ready()] == [3]
    assert sub.stats.filled == 3
