"""Wire format: topics, round trips, proofs, and hostile bytes that must raise WireError."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.devnet import build_devnet
from chains.node import Node
from chains.pos import devnet_pos_params
from chains.service.wire import (
    KINDS,
    MAX_PAYLOAD_BYTES,
    BlockEvents,
    ChainReorg,
    ChainStatus,
    MalformedPayload,
    PayloadTooLarge,
    SignedHeader,
    UnknownTopic,
    UnsupportedVersion,
    WireError,
    WrongChain,
    decode,
    encode_events,
    encode_header,
    encode_reorg,
    encode_status,
    events_topic,
    headers_topic,
    parse_topic,
    reorgs_topic,
    status_topic,
)
from chains.types import Block, Event
from tests.conftest import devnet_chain, open_node, transfer


@pytest.fixture
async def made(tmp_path: Path) -> Iterator[tuple[Node, Block]]:
    dc = devnet_chain()
    node = open_node(dc, tmp_path)
    for i in range(7):
        node.submit_nowait(transfer(dc, i))
    block = node.produce_block()
    yield node, block
    node.store.close()


def test_topics() -> None:
    assert headers_topic("chain-a") == "interlock/v1/chains/chain-a/headers"
    assert events_topic("chain-a") == "interlock/v1/chains/chain-a/events"
    assert status_topic("chain-a") == "interlock/v1/chains/chain-a/status"
    assert reorgs_topic("chain-a") == "interlock/v1/chains/chain-a/reorgs"
    assert parse_topic("interlock/v1/chains/chain-a/events") == ("chain-a", "events")
    for bad in (
        "interlock/v1/chains/chain-a",
        "interlock/v2/chains/chain-a/headers",
        "interlock/v1/chains/chain-a/headers/x",
        "interlock/v1/chains/a b/headers",
        "interlock/v1/chains//headers",
    ):
        with pytest.raises(UnknownTopic):
            parse_topic(bad)
    with pytest.raises(WrongChain):
        headers_topic("chain/with/slashes")


async def test_header_round_trip(made: tuple[Node, Block]) -> None:
    node, block = made
    vals = node.get_validators(block.height)
    assert vals is not None
    item = decode(headers_topic("chain-a"), encode_header(block, vals))
    assert item == SignedHeader(block.header, block.commit, vals)


async def test_events_round_trip_in_one_or_many_messages(made: tuple[Node, Block]) -> None:
    _, block = made
    for chunk in (1 << 20, 600, 1):
        parts = encode_events(block, chunk_bytes=chunk)
        got: dict[int, Event] = {}
        for p in parts:
            item = decode(events_topic("chain-a"), p)
            assert isinstance(item, BlockEvents)
            assert (item.height, item.block_hash, item.event_count) == (
                block.height,
                block.header.hash,
                7,
            )
            for proof in item.proofs:
                assert proof == block.prove_event(proof.index)
                got[proof.index] = proof.event
        assert tuple(got[i] for i in range(7)) == block.events
    assert len(encode_events(block, chunk_bytes=1)) == 7


async def test_an_empty_block_still_sends_one_events_message(tmp_path: Path) -> None:
    node = open_node(devnet_chain(), tmp_path)
    block = node.produce_block()
    [p] = encode_events(block)
    item = decode(events_topic("chain-a"), p)
    assert isinstance(item, BlockEvents)
    assert (item.event_count, item.proofs) == (0, ())
    node.store.close()


def test_status_round_trip() -> None:
    item = decode(status_topic("chain-a"), encode_status("chain-a", "online", 12, 1000))
    assert item == ChainStatus("chain-a", "online", 12, 1000)


async def test_reorg_round_trip_and_hostile_shapes(made: tuple[Node, Block]) -> None:
    _, block = made
    tip = block.header
    payload = encode_reorg("chain-a", 0, 3, tip, 1000)
    item = decode(reorgs_topic("chain-a"), payload)
    assert item == ChainReorg("chain-a", 0, 3, tip.height, tip.hash, 1000)
    good = orjson.loads(payload)
    bad_values: list[dict[str, object]] = [
        {"fork_height": tip.height},  # the new tip is not above the fork
        {"old_height": 0},
        {"fork_height": -1},
        {"fork_height": "0"},
        {"new_tip": "AB" * 32},
        {"new_tip": tip.hash.hex()[:62]},
        {"kind": "status"},
        {"time": 1.5},
        {"extra": 1},
    ]
    for change in bad_values:
        with pytest.raises(MalformedPayload):
            decode(reorgs_topic("chain-a"), orjson.dumps({**good, **change}))
    with pytest.raises(WrongChain):
        decode(reorgs_topic("chain-b"), payload)
    for key in ("fork_height", "new_tip"):
        with pytest.raises(MalformedPayload):
            decode(
                reorgs_topic("chain-a"), orjson.dumps({k: v for k, v in good.items() if k != key})
            )


async def test_payloads_are_sorted_compact_json(made: tuple[Node, Block]) -> None:
    node, block = made
    vals = node.get_validators(block.height)
    assert vals is not None
    for p in [encode_header(block, vals), *encode_events(block)]:
        assert b"\n" not in p
        assert p == orjson.dumps(orjson.loads(p), option=orjson.OPT_SORT_KEYS)


# --- hostile bytes --------------------------------------------------------------------


def test_oversized_payload_is_refused_before_parsing() -> None:
    huge = b"{" + b" " * MAX_PAYLOAD_BYTES + b"}"  # valid JSON, too big
    with pytest.raises(PayloadTooLarge):
        decode(headers_topic("chain-a"), huge)
    with pytest.raises(PayloadTooLarge):
        decode(headers_topic("chain-a"), b"x" * (10 * 1024 * 1024))


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", MalformedPayload),
        (b"\x00\x01\x02", MalformedPayload),
        (b'{"v":1', MalformedPayload),
        (b"null", MalformedPayload),
        (b'"v"', MalformedPayload),
        (b"[" * 5000 + b"]" * 5000, MalformedPayload),
        (b'{"v":2,"kind":"header"}', UnsupportedVersion),
        (b'{"v":"1","kind":"header"}', UnsupportedVersion),
        (b'{"v":true,"kind":"header"}', UnsupportedVersion),
        (b'{"v":1.0,"kind":"header"}', UnsupportedVersion),
        (b'{"kind":"header"}', UnsupportedVersion),
        (b'{"v":1,"kind":"header"}', MalformedPayload),
        (b'{"v":1,"kind":"events"}', MalformedPayload),
        (b'{"v":1,"kind":"status","chain_id":"chain-a"}', MalformedPayload),
    ],
)
def test_garbage_raises_typed_errors(payload: bytes, error: type[WireError]) -> None:
    with pytest.raises(error):
        decode(headers_topic("chain-a"), payload)


async def test_shape_violations_are_malformed(made: tuple[Node, Block]) -> None:
    node, block = made
    vals = node.get_validators(block.height)
    assert vals is not None
    good = orjson.loads(encode_header(block, vals))

    def variant(path: list[str | int], value: object) -> bytes:
        obj = orjson.loads(orjson.dumps(good))
        target = obj
        for k in path[:-1]:
            target = target[k]
        target[path[-1]] = value
        return json.dumps(obj).encode()

    cases = [
        (["header", "height"], "5"),  # strict: no string → int coercion
        (["header", "height"], True),
        (["header", "height"], 0),
        (["header", "height"], 2**64),
        (["header", "event_root"], "AB" * 32),  # hex is lowercase
        (["header", "event_root"], "ab" * 31),
        (["header", "chain_id"], "chain a"),
        (["commit", "signatures"], [{"validator": "00" * 32}]),
        (["validators"], []),
        (["validators", 0, "power"], 0),
        (["kind"], "events"),
        (["extra"], 1),
    ]
    for path, value in cases:
        with pytest.raises(MalformedPayload):
            decode(headers_topic("chain-a"), variant(path, value))
    unsorted = orjson.loads(orjson.dumps(good))
    unsorted["validators"].reverse()
    with pytest.raises(MalformedPayload):
        decode(headers_topic("chain-a"), orjson.dumps(unsorted))


async def test_a_pos_header_carries_slot_and_seal_both_or_neither(tmp_path: Path) -> None:
    """A proof-of-stake header round-trips with its ``slot`` and ``seal``; one without the
    other, out of range, or mixed with a proof-of-work seal is malformed."""
    [dc] = build_devnet(["chain-s"], consensus={"chain-s": devnet_pos_params()})
    node = open_node(dc, tmp_path)
    block = node.produce_block()
    vals = node.get_validators(block.height)
    node.store.close()
    assert vals is not None
    assert block.header.slot is not None
    topic = headers_topic("chain-s")
    assert decode(topic, encode_header(block, vals)) == SignedHeader(
        block.header, block.commit, vals
    )
    good = orjson.loads(encode_header(block, vals))
    for change in (
        {"seal": None},
        {"slot": None},
        {"slot": -1},
        {"slot": 2**20 + 1},
        {"slot": "0"},
        {"seal": "ab" * 63},
        {"seal": "AB" * 64},
        {"nonce": 0, "target": "ff" * 32},
    ):
        obj = orjson.loads(orjson.dumps(good))
        for k, v in change.items():
            if v is None:
                del obj["header"][k]
            else:
                obj["header"][k] = v
        with pytest.raises(MalformedPayload):
            decode(topic, orjson.dumps(obj))


async def test_a_header_on_another_chains_topic_is_wrong_chain(made: tuple[Node, Block]) -> None:
    node, block = made
    vals = node.get_validators(block.height)
    assert vals is not None
    with pytest.raises(WrongChain):
        decode(headers_topic("chain-b"), encode_header(block, vals))
    with pytest.raises(WrongChain):
        decode(events_topic("chain-b"), encode_events(block)[0])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_only_ever_raise_wire_errors(payload: bytes) -> None:
    for kind in KINDS:
        with contextlib.suppress(WireError):
            decode(f"interlock/v1/chains/chain-a/{kind}", payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "v",
                "kind",
                "header",
                "commit",
                "validators",
                "chain_id",
                "height",
                "events",
                "event_count",
                "block_hash",
                "state",
                "fork_height",
                "old_height",
                "new_height",
                "new_tip",
            ]
        ),
        json_values,
    )
)
def test_random_json_objects_only_ever_raise_wire_errors(obj: dict[str, object]) -> None:
    obj.setdefault("v", 1)
    payload = json.dumps(obj).encode()
    for kind in KINDS:
        with contextlib.suppress(WireError):
            decode(f"interlock/v1/chains/chain-a/{kind}", payload)
